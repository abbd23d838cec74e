"""The demo model that ships with the pack: a small SD1.5-layout IP2P model that really edits.

It was trained by the pack's own recipe (`python -m training.demo_recipe`) on drawn scenes of
64 x 64 pixels (`training.synthetic_shapes`): "make the circle red", "remove the square",
"make the background blue", "make it night", "move the triangle left", "add a red square in the
top left". ComfyUI builds it as SD1.5 InstructPix2Pix: a one-level UNet of 320 channels, a
text encoder of the CLIP-L shape and a TAESD-format VAE.

The repository holds it in compact form (`compact_weights`: a tenth of the expanded size), with
a record of the compact file's and the expanded weights' sha256. `load_state_dict` checks both,
so a missing, truncated or altered file stops with a message instead of loading a different
model. Packing it is the recipe's (`training/demo_packing.py`); writing it out as an ordinary
single file, for tools and tests, is `tools/demo_checkpoint.py`'s.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from torch import Tensor

from .errors import IP2PUserError
from .formats.compact_weights import digest, expand, manifest_from_metadata

CHECKPOINT_NAME = "ip2p_demo_shapes.safetensors"  # what IP2P Checkpoint Loader lists
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
COMPACT_NAME = "ip2p_demo_shapes.compact.safetensors"
RECORD_NAME = "ip2p_demo_shapes.json"
IMAGE_SIZE = 64  # the scenes it was trained on; IP2P Encode's `resolution` brings other pictures to it


def load_state_dict(folder: Path = MODELS_DIR) -> dict[str, Tensor]:
    """The demo model's full single-file state dict, checked against its record."""
    record = read_record(folder)
    path = folder / record["compact_file"]
    if not path.is_file():
        raise IP2PUserError(f"the demo model's weights are missing: {path} not found. Restore the pack's models/ "
                            "folder (e.g. git checkout -- models, or reinstall the pack)")
    if file_sha256(path) != record["compact_sha256"]:
        raise IP2PUserError(f"the demo model's weights in {path} are damaged or were changed (their sha256 is not "
                            f"the one in {RECORD_NAME}): restore the file (git checkout -- models, or reinstall the pack)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            manifest = manifest_from_metadata(handle.metadata(), path.name)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except SafetensorError as exc:
        raise IP2PUserError(f"cannot read the demo model's weights {path}: {exc}") from exc
    state = expand(tensors, manifest)
    if digest(state) != record["expanded_sha256"]:
        raise IP2PUserError(f"the demo model expanded from {path} does not match its record: this torch build "
                            "computes it differently; report it with your torch version")
    return state


def read_record(folder: Path) -> dict[str, Any]:
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise IP2PUserError(f"the demo model's record {path} is missing: restore the pack's models/ folder "
                            "(git checkout -- models, or reinstall the pack)")
    return json.loads(path.read_text())


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
