"""The host's two CPU attention kernels on SD1.5's attention shapes, alternating in one process.

    python -m benchmarks.attention_kernels [--sizes 256 512 1024] [--pairs 3]

Times ComfyUI's `attention_sub_quad` (what both hosts run on the CPU without an attention
flag) and `attention_pytorch` (what `--use-pytorch-cross-attention` selects, and what the
pack's guider picks instead: nodes/attention.py) on the query, key and value shapes of one
IP2P step (a batch of 3) at SD1.5's first, widest-token level, self-attention (attn1) and
cross-attention over 77 text tokens (attn2). Prints seconds per call, the median of the
per-pair ratios, the extra peak memory of a call and the largest difference of the outputs.
No model is needed.
"""
import argparse
import statistics
import sys
import time

import torch

from .proc_memory import memory_mb, reset_peak

HEADS, HEAD_DIM, BATCH, TEXT_TOKENS = 8, 40, 3, 77  # SD1.5's first level: 320 channels


def timed(kernel, q, k, v):
    reset_peak()
    before = memory_mb()["rss"]
    started = time.perf_counter()
    out = kernel(q, k, v, HEADS)
    return out, time.perf_counter() - started, memory_mb()["hwm"] - before


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="image sizes in pixels")
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs per shape")
    args = parser.parse_args(argv)

    from comfy.cli_args import args as comfy_args
    comfy_args.cpu = True  # else it probes for CUDA
    import comfy.ldm.modules.attention as attention

    kernels = {"sub_quad": attention.attention_sub_quad, "pytorch": attention.attention_pytorch}
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for size in args.sizes:
            tokens = (size // 8) ** 2
            for name, context in (("attn1", tokens), ("attn2", TEXT_TOKENS)):
                q = torch.randn(BATCH, tokens, HEADS * HEAD_DIM, generator=gen)
                k, v = (torch.randn(BATCH, context, HEADS * HEAD_DIM, generator=gen) for _ in range(2))
                outs = {kernel: timed(fn, q, k, v)[0] for kernel, fn in kernels.items()}  # warm-up
                seconds, memory = {kernel: [] for kernel in kernels}, {kernel: [] for kernel in kernels}
                for pair in range(args.pairs):
                    for kernel in (list(kernels) if pair % 2 == 0 else list(kernels)[::-1]):
                        _, spent, extra = timed(kernels[kernel], q, k, v)
                        seconds[kernel].append(spent)
                        memory[kernel].append(extra)
                ratios = [p / s for p, s in zip(seconds["pytorch"], seconds["sub_quad"])]
                diff = float((outs["pytorch"] - outs["sub_quad"]).abs().max())
                print(f"{size} px {name} ({tokens} x {context} tokens): sub_quad {statistics.median(seconds['sub_quad']):.3f} s "
                      f"(+{statistics.median(memory['sub_quad']):.0f} MB), pytorch {statistics.median(seconds['pytorch']):.3f} s "
                      f"(+{statistics.median(memory['pytorch']):.0f} MB), pytorch/sub_quad median ratio "
                      f"{statistics.median(ratios):.3f}, max abs difference {diff:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
