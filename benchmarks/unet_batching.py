"""What splitting the three IP2P predictions into two UNet calls costs, measured in one process.

    python -m benchmarks.unet_batching [--latent 32 64] [--pairs 3]

Loads the generated full-size SD1.5 IP2P checkpoint with ComfyUI's own loader (CPU, fp32)
and, alternating so that load from other users of the machine hits both alike, times
ComfyUI's `apply_model` on the three predictions of one step as

* one call with a batch of 3 (what ComfyUI's native DualCFGGuider and diffusers do, as
  benchmarks/bench_edit counts inside their processes), and
* a call with a batch of 2 and a call with a batch of 1 (what the pack did when it ran the
  unconditional prediction apart, to label it an uncond for model patches).

Prints seconds per step for both and the median of the per-pair ratios.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from harness.model_factory import DEFAULT_CACHE_ROOT, build_sd15_full_ip2p


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latent", type=int, nargs="+", default=[32], help="latent sizes (image size / 8)")
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs per size")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_ROOT)
    args = parser.parse_args(argv)

    from comfy.cli_args import args as comfy_args
    comfy_args.cpu = True  # else it probes for CUDA
    import comfy.sd

    model = build_sd15_full_ip2p(args.cache)
    with torch.inference_mode():
        patcher = comfy.sd.load_checkpoint_guess_config(str(model.checkpoint), output_vae=False,
                                                        output_clip=False)[0]
        base = patcher.model
        gen = torch.Generator().manual_seed(0)
        for size in args.latent:
            x = torch.randn(3, 4, size, size, generator=gen)
            c = {"c_concat": torch.randn(3, 4, size, size, generator=gen),
                 "c_crossattn": torch.randn(3, 77, 768, generator=gen)}
            t = torch.full((3,), 5.0)

            def call(lo, hi):
                return base.apply_model(x[lo:hi], t[lo:hi], c_concat=c["c_concat"][lo:hi],
                                        c_crossattn=c["c_crossattn"][lo:hi], transformer_options={})

            call(0, 3)  # warm-up
            one, two = [], []
            for pair in range(args.pairs):
                for variant in ((0, 1) if pair % 2 == 0 else (1, 0)):
                    started = time.perf_counter()
                    if variant == 0:
                        out = call(0, 3)
                    else:
                        out = torch.cat([call(0, 2), call(2, 3)])
                    (one if variant == 0 else two).append(time.perf_counter() - started)
            ratios = [b / a for a, b in zip(one, two)]
            print(f"latent {size}x{size}: one call (3) {statistics.median(one):.2f} s/step, "
                  f"two calls (2+1) {statistics.median(two):.2f} s/step, two/one median ratio "
                  f"{statistics.median(ratios):.3f} (per pair: {', '.join(f'{r:.3f}' for r in ratios)})", flush=True)
            del out
    return 0


if __name__ == "__main__":
    sys.exit(main())
