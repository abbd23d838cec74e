"""Helpers the headless runners share (tools/edit_image.py, tools/batch_edit.py)."""
import logging
from pathlib import Path

from ip2p_core import demo_model

from .comfy_host import REPO_ROOT
from .workflow_inputs import InstructionCountError, Prompt, with_inputs

log = logging.getLogger("ip2p.run")
REAL_CHECKPOINT_NAMES = ("instruct-pix2pix-00-22000.safetensors", "instruct-pix2pix-00-22000.ckpt")
DEMO_IMAGE = REPO_ROOT / "examples" / "shapes.png"  # a scene like those the demo model learnt
DEMO_INSTRUCTION = "make the square red"
INSTRUCTION_HELP = ("the edit instruction (default: the workflow's own); for a workflow that makes different edits "
                    "in a row (chain_edit: two), give it once per edit, in the order they run")


def with_instructions(prompt: Prompt, instructions: list[str] | None, workflow: Path) -> Prompt:
    """The --instruction values (None: the workflow's own) put into `prompt`; a count that does
    not fit the workflow stops the run before anything is queued."""
    try:
        return with_inputs(prompt, instruction=instructions)
    except InstructionCountError as exc:
        raise SystemExit(f"--instruction for {workflow.name}: {exc}") from None


def find_checkpoint(requested):
    """The user's checkpoint, else a known IP2P file under ./models/checkpoints, else None."""
    if requested is not None:
        if not requested.is_file():
            raise SystemExit(f"--checkpoint {requested}: no such file")
        return requested
    for name in REAL_CHECKPOINT_NAMES:
        candidate = REPO_ROOT / "models" / "checkpoints" / name
        if candidate.is_file():
            return candidate
    return None


def demo_checkpoint() -> str:
    """The pack's demo model, which IP2P Checkpoint Loader lists without any file in models/checkpoints."""
    log.warning("No IP2P checkpoint found (looked for %s in models/checkpoints/, or pass --checkpoint): using the "
                "pack's demo model %s, which edits %d-pixel drawings of coloured shapes (e.g. '%s'). For photos, "
                "put instruct-pix2pix-00-22000.safetensors there.", " or ".join(REAL_CHECKPOINT_NAMES),
                demo_model.CHECKPOINT_NAME, demo_model.IMAGE_SIZE, DEMO_INSTRUCTION)
    return demo_model.CHECKPOINT_NAME
