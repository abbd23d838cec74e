"""UltraEdit's edit through the pack against its authors' pipeline on diffusers' models: speed and memory.

    python -m benchmarks.ultraedit_speed --out FILE     # 8 layers (width 512), 256 and 512 px, 4 steps, 3 rounds
    python -m benchmarks.ultraedit_speed --quick         # 2 layers, 64 px, 1 step, 1 round (seconds; tests)

ComfyUI's MMDiT ties the width to the depth (64 per layer, a head per layer), so SD3 medium's
width (1536) comes only with its 24 layers and 2B parameters, minutes per step on a 2-core CPU.
The benchmark's transformer is the generated test model's (harness/sd3_model_factory.py) with
`--layers` layers instead of 2 (width 64 x layers, random, seeded), beside its VAE and text
encoders, in a diffusers folder under .cache/bench (the test model's other files hard-linked).

Both paths edit the same picture with the same instruction, seed and settings (the mask model
with no mask, i.e. the all-white mask image; `--steps` flow-matching Euler steps, text 7.0, image 1.5):

* pack: IP2P Diffusers Loader, IP2P Encode (Instruction), IP2P Sampler, IP2P Decode, SaveImage in
  a ComfyUI host (fp32 text encoders, as the parity tests), timed by benchmarks/host_probe: the
  sampler loop, and the whole prompt (text encoders to the written PNG);
* reference: benchmarks/ultraedit_worker.py in a process of its own: CLIP-L and CLIP-G, the VAE,
  the authors' loop (harness/ultraedit_reference.py), the decode and the PNG write.

Each process loads its model once and makes an untimed 64 px warm-up edit. Rounds alternate
which path goes first; ratios are medians of per-round ratios (pack / reference). Peak RSS: each
process's VmHWM over an edit, reset before it. Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from harness.host_graphs import pack_edit
from harness.sd3_model_factory import MASK_CHANNELS, build_ultraedit_models, transformer_config
from tools.comfy_host import REPO_ROOT, ComfyHost

from .proc_memory import memory_mb, reset_peak

HERE = Path(__file__).resolve().parent
INSTRUCTION = "turn the sky into a sunset"
SEED, TEXT_CFG, IMAGE_CFG = 42, 7.0, 1.5
BENCH_SEED = 4321


def bench_folder(layers: int, root: Path) -> Path:
    """The test mask model's folder with a transformer of `layers` layers (width 64 x layers)."""
    from diffusers import SD3Transformer2DModel

    from harness.model_factory import randomise_

    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"ultraedit_{layers}_layers"
    if (folder / "transformer" / "config.json").is_file():
        return folder
    source = build_ultraedit_models().mask_dir
    tmp = Path(tempfile.mkdtemp(prefix=".ultraedit-", dir=root))
    shutil.copytree(source, tmp / "model", copy_function=os.link, dirs_exist_ok=True)
    shutil.rmtree(tmp / "model" / "transformer")
    config = {**transformer_config(MASK_CHANNELS), "num_layers": layers, "num_attention_heads": layers,
              "caption_projection_dim": 64 * layers}
    with torch.no_grad():
        transformer = SD3Transformer2DModel(**config).eval()
        randomise_(transformer, BENCH_SEED)
    transformer.save_pretrained(tmp / "model" / "transformer", safe_serialization=True)
    os.replace(tmp / "model", folder)
    shutil.rmtree(tmp)
    return folder


def picture(work: Path, longest: int) -> Path:
    """The example landscape with its longest side at `longest` (4:3, so both sides are multiples of 16)."""
    image = Image.open(REPO_ROOT / "examples" / "landscape.png").convert("RGB")
    path = work / f"landscape_{longest}.png"
    image.resize((longest, longest * 3 // 4), Image.LANCZOS).save(path)
    return path


class PackPath:
    def __init__(self, work: Path, folder: Path):
        self.timings = work / "host_timings.jsonl"
        self.host = ComfyHost(work / "host", extra_args=["--fp32-text-enc"],
                              env={"IP2P_BENCH_TIMINGS": str(self.timings)}, startup_timeout=600)
        (self.host.custom_nodes_dir / "ip2p_bench_probe").symlink_to(HERE / "host_probe", target_is_directory=True)
        self.host.start()
        self.model = self.host.add_model("diffusers", folder, folder.name)
        self.runs = 0

    def edit(self, image: Path, steps: int) -> dict:
        # Trailing spaces change ComfyUI's cache keys, not the tokens: the text encoders run every time.
        pad = " " * self.runs
        self.runs += 1
        graph = pack_edit("", self.host.add_input(image), INSTRUCTION + pad, seed=SEED, steps=steps,
                          text_cfg=TEXT_CFG, image_cfg=IMAGE_CFG, sampler="euler", scheduler="normal", decode=True)
        graph["1"] = {"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": self.model}}
        graph["4"]["inputs"]["text"] = pad
        seen = len(self.timings.read_text().splitlines()) if self.timings.exists() else 0
        reset_peak(self.host.proc.pid)
        self.host.run(graph)
        peak = memory_mb(self.host.proc.pid)["hwm"]
        records = [json.loads(line) for line in self.timings.read_text().splitlines()[seen:]]
        (loop,) = [r["loop_seconds"] for r in records if "loop_seconds" in r]
        (whole,) = [r["prompt_seconds"] for r in records if "prompt_seconds" in r]
        return {"whole_seconds": whole, "loop_seconds": loop, "peak_rss_mb": peak}

    def close(self) -> None:
        self.host.stop()


class ReferencePath:
    def __init__(self, work: Path, folder: Path):
        self.work = work
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ultraedit_worker", str(folder)],
                                     cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(self.proc.stdout.readline())
        self.runs = 0

    def edit(self, image: Path, steps: int) -> dict:
        self.runs += 1
        request = {"image": str(image), "prompt": INSTRUCTION, "seed": SEED, "steps": steps, "text_cfg": TEXT_CFG,
                   "image_cfg": IMAGE_CFG, "out_dir": str(self.work / "reference"), "tag": f"{self.runs:03d}"}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"reference worker: {reply['error']}")
        return reply

    def close(self) -> None:
        self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def run(layers: int, sizes: list[int], steps: int, rounds: int, work: Path) -> str:
    folder = bench_folder(layers, REPO_ROOT / ".cache" / "bench")
    parameters = transformer_parameters(folder)
    pack, reference = PackPath(work, folder), ReferencePath(work, folder)
    try:
        warm = picture(work, 64)
        pack.edit(warm, 1)
        reference.edit(warm, 1)
        results = {size: [] for size in sizes}
        for round_index in range(rounds):
            for size in sizes:
                image = picture(work, size)
                paths = (pack, reference) if round_index % 2 == 0 else (reference, pack)
                measured = {id(path): path.edit(image, steps) for path in paths}
                results[size].append((measured[id(pack)], measured[id(reference)]))
    finally:
        pack.close()
        reference.close()
    return report(layers, parameters, steps, rounds, results)


def transformer_parameters(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(folder / "transformer" / "diffusion_pytorch_model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def report(layers: int, parameters: int, steps: int, rounds: int, results: dict) -> str:
    lines = [f"Transformer: {layers} layers, width {64 * layers}, {parameters / 1e6:.1f}M parameters, 48 input "
             f"channels; {steps} steps, {rounds} rounds, torch threads {torch.get_num_threads()} (this process).",
             "",
             "| size (px) | pack s/step | reference s/step | pack / reference (step) | pack s/edit | "
             "reference s/edit | pack / reference (edit) | peak RSS pack / reference (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for size, pairs in results.items():
        step = [p["loop_seconds"] / steps for p, _ in pairs], [r["loop_seconds"] / steps for _, r in pairs]
        whole = [p["whole_seconds"] for p, _ in pairs], [r["whole_seconds"] for _, r in pairs]
        step_ratio = statistics.median(p / r for p, r in zip(*step))
        whole_ratio = statistics.median(p / r for p, r in zip(*whole))
        peaks = max(p["peak_rss_mb"] for p, _ in pairs), max(r["peak_rss_mb"] for _, r in pairs)
        cells = [f"{size} x {size * 3 // 4}", f"{statistics.median(step[0]):.3f}", f"{statistics.median(step[1]):.3f}",
                 f"{step_ratio:.2f}", f"{statistics.median(whole[0]):.2f}", f"{statistics.median(whole[1]):.2f}",
                 f"{whole_ratio:.2f}", f"{peaks[0]:.0f} / {peaks[1]:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=8, help="transformer layers (width 64 per layer)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="longest sides in pixels")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 layers, 64 px, 1 step, 1 round")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.sizes, args.steps, args.rounds = 2, [64], 1, 1
    with tempfile.TemporaryDirectory(prefix="ip2p-ultraedit-bench-") as work:
        table = run(args.layers, args.sizes, args.steps, args.rounds, Path(work))
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
