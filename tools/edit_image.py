"""Edits an image with an IP2P workflow in a real, headless ComfyUI and saves the result.

    python -m tools.edit_image [--image PATH] [--instruction TEXT ...] [--checkpoint PATH]

Starts the host in a temporary folder with this pack in custom_nodes, puts the checkpoint
and image there, queues the API-format workflow and copies the saved image out. Without a
real IP2P checkpoint it uses the pack's demo model, which edits 64-pixel drawings of shapes:
by default it makes examples/shapes.png's square red (and says so).
"""
import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from ip2p_core.output_names import free_path

from .comfy_host import REPO_ROOT, ComfyHost, HostError
from .run_common import (
    DEMO_IMAGE,
    DEMO_INSTRUCTION,
    INSTRUCTION_HELP,
    demo_checkpoint,
    demo_model,
    find_checkpoint,
    with_instructions,
)
from .workflow_inputs import load_workflow, with_inputs

log = logging.getLogger("ip2p.edit")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", type=Path, default=REPO_ROOT / "workflows" / "basic_edit.api.json")
    parser.add_argument("--image", type=Path, help="default: examples/landscape.png, or with the demo model "
                                                   "examples/shapes.png")
    parser.add_argument("--instruction", action="append", help=INSTRUCTION_HELP)
    parser.add_argument("--checkpoint", type=Path, help="an IP2P checkpoint file")
    parser.add_argument("--steps", type=int, help="default: the workflow's")
    parser.add_argument("--seed", type=int, help="default: the workflow's")
    parser.add_argument("--resolution", type=int, help="working resolution, longest side in px (0: the input's)")
    parser.add_argument("--mask", type=Path, help="mask image (white = edit) for workflows with Load Image Mask, "
                                                  "e.g. examples/landscape_sky_mask.png")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "output", help="folder for the result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    checkpoint = find_checkpoint(args.checkpoint)
    demo = checkpoint is None
    if demo:  # the demo model edits 64-pixel scenes: bring any picture to that size, and edit one
        args.image = args.image or DEMO_IMAGE
        args.instruction = args.instruction or [DEMO_INSTRUCTION]
        args.resolution = demo_model.IMAGE_SIZE if args.resolution is None else args.resolution
    args.image = args.image or REPO_ROOT / "examples" / "landscape.png"
    if not args.image.is_file():
        raise SystemExit(f"--image {args.image}: no such file")
    workflow = with_instructions(load_workflow(args.workflow), args.instruction, args.workflow)
    needs_mask = any(node["class_type"] == "LoadImageMask" for node in workflow.values())
    if needs_mask and (args.mask is None or not args.mask.is_file()):
        raise SystemExit(f"{args.workflow.name} edits inside a mask: pass --mask PATH (an existing image file)")
    with tempfile.TemporaryDirectory(prefix="ip2p-host-") as work, ComfyHost(work) as host:
        name = demo_checkpoint() if demo else host.add_model("checkpoints", checkpoint)
        log.info("ComfyUI (%s) started in %.1f s; editing %s with %s", host.kind, host.startup_seconds,
                 args.image.name, name)
        prompt = with_inputs(workflow, checkpoint=name, image=host.add_input(args.image),
                             seed=args.seed, steps=args.steps, resolution=args.resolution,
                             mask=host.add_input(args.mask) if needs_mask else None)
        try:
            outputs = host.run(prompt)
        except HostError as exc:
            log.error("the workflow failed: %s", exc)
            return 1
        images = [p for p in host.output_files(outputs, types=["output"]) if p.suffix == ".png"]
        args.output.mkdir(parents=True, exist_ok=True)
        for image in images:
            target = free_path(args.output, f"{args.image.stem}_edited", ".png")
            shutil.copyfile(image, target)
            log.info("wrote %s", target)
    return 0 if images else 1


if __name__ == "__main__":
    sys.exit(main())
