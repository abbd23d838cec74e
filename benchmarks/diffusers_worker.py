"""The diffusers side of the benchmark, in a process of its own (as each ComfyUI host is).

Protocol: JSON lines. The worker loads `StableDiffusionInstructPix2PixPipeline` from the
folder given on the command line, answers `{"ready": ...}`, then reads one request per line
from stdin and answers one line on stdout; everything else it says goes to stderr.

An edit request times, in this process:

* `whole_seconds`: opening the image file to the saved PNG: the pipeline call (prompt
  encoding, VAE encoding, the loop, VAE decoding, post-processing) plus PNG and latent writes,
  like the host graphs' SaveImage and SaveLatent;
* `loop_seconds`: from the start of the first UNet call to the end of the last step (its
  `callback_on_step_end`), i.e. every UNet call and scheduler step; `steps`: the steps ended;
  `model_calls`: `[batch, seconds]` per call of the UNet's forward (hooks on `pipe.unet`: the
  batch is its sample's first dimension), as benchmarks/host_probe records the hosts' calls;
  `page_faults`: the process's minor page faults over the same span;
* `peak_rss_mb`: the process's peak resident set during the edit (VmHWM after resetting it
  through /proc/self/clear_refs before the edit), and `rss_before_mb`.
"""
import json
import resource
import sys
import time
from pathlib import Path

import torch

from harness.diffusers_reference import (
    SD15_LATENT_SCALE,
    comfy_noise,
    comfy_pipeline,
    start_latents,
)

from .proc_memory import memory_mb, reset_peak


def edit(pipe, request: dict) -> dict:
    from PIL import Image
    from safetensors.torch import save_file

    out_dir = Path(request["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    marks = {"steps": 0}
    calls = []  # [batch, seconds] per UNet call

    def before_call(module, args, kwargs):
        marks["batch"] = int((args[0] if args else kwargs["sample"]).shape[0])
        marks["call_start"] = time.perf_counter()
        marks.setdefault("loop_start", marks["call_start"])
        marks.setdefault("faults_start", resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

    def after_call(module, args, output):
        calls.append([marks["batch"], time.perf_counter() - marks["call_start"]])

    def step_end(pipeline, step, timestep, kwargs):
        marks["steps"] += 1
        marks["loop_end"] = time.perf_counter()
        marks["faults_end"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        marks["latents"] = kwargs["latents"]
        return kwargs

    hooks = [pipe.unet.register_forward_pre_hook(before_call, with_kwargs=True),
             pipe.unet.register_forward_hook(after_call)]
    reset_peak()
    rss_before = memory_mb()["rss"]
    try:
        started = time.perf_counter()
        picture = Image.open(request["image"]).convert("RGB")
        noise = comfy_noise((1, 4, picture.height // 8, picture.width // 8), request["seed"])
        latents = start_latents(pipe, noise, request["steps"])
        with torch.no_grad():
            image = pipe(request["prompt"], image=picture, negative_prompt=request.get("negative") or None,
                         num_inference_steps=request["steps"], guidance_scale=request["text_cfg"],
                         image_guidance_scale=request["image_cfg"], latents=latents, output_type="pil",
                         callback_on_step_end=step_end).images[0]
        image.save(out_dir / f"diffusers_{request['tag']}.png", compress_level=4)  # SaveImage's level
        save_file({"latent_tensor": (marks["latents"] / SD15_LATENT_SCALE).contiguous()},
                  str(out_dir / f"diffusers_{request['tag']}.latent"))
        whole = time.perf_counter() - started
    finally:
        for hook in hooks:
            hook.remove()
    memory = memory_mb()
    return {"whole_seconds": whole, "loop_seconds": marks["loop_end"] - marks["loop_start"],
            "steps": marks["steps"], "model_calls": calls,
            "page_faults": marks["faults_end"] - marks["faults_start"],
            "peak_rss_mb": memory["hwm"], "rss_before_mb": rss_before,
            "latent": str(out_dir / f"diffusers_{request['tag']}.latent"),
            "image": str(out_dir / f"diffusers_{request['tag']}.png")}


def serve(handle, ready: dict) -> None:
    """Answers `ready`, then each request line of stdin with `handle(request)`'s line, until "quit"."""
    print(json.dumps({"ready": True, **ready}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            break
        try:
            print(json.dumps(handle(request)), flush=True)
        except Exception as exc:  # reported to the parent, which stops the benchmark
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)


def main() -> None:
    pipe = comfy_pipeline(sys.argv[1])
    serve(lambda request: edit(pipe, request),
          {"torch": torch.__version__, "threads": torch.get_num_threads(), "memory_mb": memory_mb()})


if __name__ == "__main__":
    main()
