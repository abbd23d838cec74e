"""Peak memory of IP2P Add Difference on the full-size SD1.5-shaped test model, in a real host.

    python -m benchmarks.merge_memory                         # this checkout
    python -m benchmarks.merge_memory --pack-dir OLD_CHECKOUT   # another version of the pack
    python -m benchmarks.merge_memory --host-arg=--fp16-unet    # half-size UNets (less RAM)
    python -m benchmarks.merge_memory --quick                   # the demo model (tests)

Two fresh hosts, each started with the same flags, each running one graph; the peak resident
memory of the host process (VmHWM) is read after it:
- **edit**: IP2P Checkpoint Loader and Load Checkpoint on the same generated file (the full
  SD1.5 UNet, 860 M parameters), and a one-step 64 px edit with one of them;
- **merge + edit**: the same loaders, IP2P Add Difference (the IP2P model + (custom - base),
  custom and base both the Load Checkpoint model), and the same edit with the merged model.
The difference is what the merge costs beyond the models already loaded. Linux only.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness.demo_files import cached_demo_files
from harness.host_graphs import pack_edit
from harness.model_factory import DEFAULT_CACHE_ROOT, build_sd15_full_ip2p
from tools.comfy_host import ComfyHost

from .proc_memory import memory_mb

REPO = Path(__file__).resolve().parent.parent

CKPT = "sd15_full_ip2p.safetensors"


def graph(merge: bool) -> dict:
    """Both loaders run either way (the IP2P loader's CLIP and VAE are used); the edit samples with
    the merged model, or with the Load Checkpoint one."""
    prompt = pack_edit(CKPT, "input.png", "make it winter", seed=0, steps=1, text_cfg=7.5, image_cfg=1.5)
    prompt["40"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}}
    prompt["41"] = {"class_type": "IP2PAddDifference", "inputs": {"ip2p_model": ["1", 0], "custom_model": ["40", 0],
                                                                  "base_model": ["40", 0], "strength": 1.0}}
    prompt["6"]["inputs"]["model"] = ["41", 0] if merge else ["40", 0]
    return prompt


def measure(pack_dir: Path, checkpoint: Path, merge: bool, flags: list[str]) -> float:
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="merge-memory-") as work, \
            ComfyHost(work, pack_dir=pack_dir, extra_args=flags) as host:
        host.add_model("checkpoints", checkpoint, CKPT)
        Image.new("RGB", (64, 64), (90, 140, 200)).save(Path(work) / "input.png")
        host.add_input(Path(work) / "input.png")
        host.run(graph(merge), timeout=3600)
        return memory_mb(host.proc.pid)["hwm"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack-dir", type=Path, default=REPO)
    parser.add_argument("--host-arg", dest="flags", action="append", default=[], help="a flag for the hosts")
    parser.add_argument("--quick", action="store_true", help="the demo model instead (says nothing about memory)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_ROOT, help="where generated models are cached")
    args = parser.parse_args(argv)
    checkpoint = (cached_demo_files().model if args.quick else build_sd15_full_ip2p(args.cache)).checkpoint
    edit, merged = (measure(args.pack_dir, checkpoint, merge, args.flags) for merge in (False, True))
    print(f"pack {args.pack_dir}, flags {' '.join(args.flags) or '(none)'}: peak RSS edit {edit:.0f} MB, "
          f"merge + edit {merged:.0f} MB, merge costs {merged - edit:+.0f} MB")


if __name__ == "__main__":
    main()
