"""Runs a workflow on every image in a folder, headless, through a real ComfyUI.

    python -m tools.batch_edit --workflow workflows/basic_edit.api.json --input-dir photos \\
        --instruction "make it winter" --output-dir edited [--checkpoint PATH] [--url URL]

Without --url it starts ComfyUI in a temporary folder with this pack (as tools/edit_image.py
does; set IP2P_COMFYUI_DIR for an upstream checkout) and links the checkpoint in; with --url
it uses a ComfyUI that is already running (the pack installed there), and --checkpoint names a
file as that server lists it. Each image is uploaded, put into the workflow's Load Image with
the instruction (and --seed, --steps, --resolution, --mask when given), queued, and the
images the workflow saves are copied to --output-dir as <name>_edited.png (<name>_edited_1.png
if that exists: nothing is overwritten). A failing image is reported and the batch goes on;
the exit code is 1 if any image failed. The workflow may be in API or UI format.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ip2p_core.output_names import free_path

from .comfy_client import ComfyClient, HostError
from .comfy_host import ComfyHost
from .run_common import INSTRUCTION_HELP, demo_checkpoint, find_checkpoint, with_instructions
from .ui_workflow import WorkflowFormatError, load_any
from .workflow_inputs import MODEL_FILES, with_inputs

log = logging.getLogger("ip2p.batch")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
UPLOAD_FOLDER = "ip2p_batch"  # inputs go into this sub-folder of the server's input/
# Where a local host takes each kind of model file (see workflow_inputs.MODEL_FILES): the
# legacy folder names, which the 2024 host knows and upstream lists under diffusion_models and
# text_encoders.
MODEL_FOLDERS = {"checkpoint": "checkpoints", "sd_checkpoint": "checkpoints", "diffusers": "diffusers",
                 "unet": "unet", "clip": "clip", "vae": "vae", "upscale_model": "upscale_models", "lora": "loras",
                 "controlnet": "controlnet"}


def saved_images(outputs: dict) -> list[dict]:
    """The images a run saved (Save Image: type "output"; previews are left out)."""
    return [item for node in outputs.values() if isinstance(node, dict)
            for item in node.get("images") or [] if item.get("type", "output") == "output"]


def write_new(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Writes `data` under a name no file has yet, even if another process writes there too."""
    while True:
        target = free_path(folder, stem, suffix)
        try:
            with open(target, "xb") as f:
                f.write(data)
            return target
        except FileExistsError:
            continue


def short(exc: Exception) -> str:
    """One line for the per-image report (the host's traceback stays out of it)."""
    if isinstance(exc, HostError) and exc.kind == "execution":
        return f"{exc.node_type} failed: {exc.exception_type}: {exc.exception_message}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def edit_one(host, prompt: dict, image: Path, output_dir: Path, settings: dict) -> list[Path]:
    run = with_inputs(prompt, image=host.upload(image, UPLOAD_FOLDER), **settings)
    items = saved_images(host.run(run))
    if not items:
        raise RuntimeError("the workflow saved no image: it needs a Save Image node")
    return [write_new(output_dir, f"{image.stem}_edited", Path(item["filename"]).suffix or ".png",
                      host.download(item)) for item in items]


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        log.info("skipping %d file(s) that are not images by name: %s", len(skipped), ", ".join(skipped))
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


@contextmanager
def connect(url: str | None):
    if url:
        try:
            client = ComfyClient(url).check()
        except HostError as exc:
            raise SystemExit(f"--url: {exc}") from None
        yield client
        return
    with tempfile.TemporaryDirectory(prefix="ip2p-batch-") as work, ComfyHost(work) as host:
        log.info("ComfyUI (%s) started in %.1f s", host.kind, host.startup_seconds)
        yield host


def model_names(host, args, prompt: dict) -> dict:
    """Model files by kind, as the host lists them: linked into a local host, named for a running one."""
    files = dict(args.model)
    if args.checkpoint is not None:
        files["checkpoint"] = args.checkpoint
    if not isinstance(host, ComfyHost):  # a server the user runs: names as it lists them
        return {kind: str(value) for kind, value in files.items()}
    uses_checkpoint = any(node["class_type"] == MODEL_FILES["checkpoint"][0] for node in prompt.values())
    if "checkpoint" not in files and uses_checkpoint and (found := find_checkpoint(None)):
        files["checkpoint"] = found
    names = {}
    for kind, path in files.items():
        path = Path(path)
        if not path.exists():
            raise SystemExit(f"{kind} file {path}: no such file or folder")
        names[kind] = host.add_model(MODEL_FOLDERS[kind], path)
    if uses_checkpoint and "checkpoint" not in names:
        names["checkpoint"] = demo_checkpoint()
    return names


def model_option(text: str) -> tuple[str, str]:
    kind, sep, value = text.partition("=")
    if not sep or kind not in MODEL_FILES:
        raise argparse.ArgumentTypeError(f"expected KIND=FILE with KIND one of {', '.join(MODEL_FILES)}")
    return kind, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", type=Path, required=True, help="an API- or UI-format workflow file")
    parser.add_argument("--input-dir", type=Path, required=True, help="folder of images to edit")
    parser.add_argument("--output-dir", type=Path, required=True, help="folder for the results (created)")
    parser.add_argument("--instruction", action="append", help=INSTRUCTION_HELP)
    parser.add_argument("--checkpoint", help="an IP2P checkpoint: a file, or with --url the name the server lists")
    parser.add_argument("--model", type=model_option, action="append", default=[], metavar="KIND=FILE",
                        help=f"another model file the workflow loads; KIND: {', '.join(MODEL_FILES)}")
    parser.add_argument("--url", help="use the ComfyUI running at this URL instead of starting one")
    parser.add_argument("--seed", type=int, help="seed for every image (default: the workflow's)")
    parser.add_argument("--steps", type=int, help="default: the workflow's")
    parser.add_argument("--resolution", type=int, help="working resolution, longest side in px (0: each input's)")
    parser.add_argument("--mask", type=Path, help="one mask for every image, for workflows with Load Image (as Mask)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if not args.workflow.is_file():
        raise SystemExit(f"--workflow {args.workflow}: no such file")
    if not args.input_dir.is_dir():
        raise SystemExit(f"--input-dir {args.input_dir}: no such folder")
    images = list_images(args.input_dir)
    if not images:
        raise SystemExit(f"--input-dir {args.input_dir}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    args.output_dir.mkdir(parents=True, exist_ok=True)

    failed, written = [], 0
    with connect(args.url) as host:
        try:
            prompt = load_any(args.workflow, host.object_info())
        except WorkflowFormatError as exc:
            raise SystemExit(f"--workflow {args.workflow}: {exc}") from None
        prompt = with_instructions(prompt, args.instruction, args.workflow)
        needs_mask = any(node["class_type"] == "LoadImageMask" for node in prompt.values())
        if needs_mask and (args.mask is None or not args.mask.is_file()):
            raise SystemExit(f"{args.workflow.name} edits inside a mask: pass --mask PATH (an existing image file)")
        settings = dict(seed=args.seed, steps=args.steps, resolution=args.resolution,
                        mask=host.upload(args.mask, UPLOAD_FOLDER) if needs_mask else None, **model_names(host, args, prompt))
        log.info("editing %d image(s) from %s with %s", len(images), args.input_dir, args.workflow.name)
        for i, image in enumerate(images, 1):
            started = time.monotonic()
            try:
                targets = edit_one(host, prompt, image, args.output_dir, settings)
            except Exception as exc:  # noqa: BLE001 - one bad image must not stop the batch
                failed.append(image.name)
                log.error("[%d/%d] %s: FAILED: %s", i, len(images), image.name, short(exc))
                continue
            written += len(targets)
            log.info("[%d/%d] %s -> %s (%.1f s)", i, len(images), image.name,
                     ", ".join(t.name for t in targets), time.monotonic() - started)
    log.info("%d of %d image(s) edited, %d file(s) written to %s%s", len(images) - len(failed), len(images),
             written, args.output_dir, f"; failed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
