"""Helpers the headless runners share (tools/edit_image.py, tools/batch_edit.py)."""
import logging
from pathlib import Path

from .comfy_host import REPO_ROOT
from .workflow_inputs import InstructionCountError, Prompt, with_inputs

log = logging.getLogger("ip2p.run")
REAL_CHECKPOINT_NAMES = ("instruct-pix2pix-00-22000.safetensors", "instruct-pix2pix-00-22000.ckpt")
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


def generated_checkpoint() -> Path:
    from harness.model_factory import build_sd15_ip2p

    log.warning("No IP2P checkpoint found (looked for %s in models/checkpoints/, or pass --checkpoint): "
                "using a GENERATED random-weight SD1.5 IP2P model. The edit runs end to end, but the "
                "picture will be noise-like.", " or ".join(REAL_CHECKPOINT_NAMES))
    return build_sd15_ip2p(REPO_ROOT / ".cache" / "test_models").checkpoint
