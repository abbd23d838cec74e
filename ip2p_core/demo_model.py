"""The demo model that ships with the pack: a small SD1.5-layout IP2P model that really edits.

It was trained by the pack's own recipe (`python -m ip2p_core.training.demo_recipe`) on drawn scenes of
64 x 64 pixels (`ip2p_core.training.synthetic_shapes`): "make the circle red", "remove the square",
"make the background blue", "make it night", "move the triangle left", "add a red square in the
top left". ComfyUI builds it as SD1.5 InstructPix2Pix: a one-level UNet of 320 channels, a
text encoder of the CLIP-L shape and a TAESD-format VAE.

The repository holds it in compact form (`compact_weights`: about 30 MB instead of 400 MB), with
a record of the compact file's and the expanded weights' sha256. `load_state_dict` checks both,
so a missing, truncated or altered file stops with a message instead of loading a different
model; `write_checkpoint` writes the ordinary single file.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import IP2PUserError
from .formats.compact_weights import (
    Compact,
    compact,
    digest,
    expand,
    hashed,
    manifest_from_metadata,
    manifest_metadata,
    ones,
    zeros,
)
from .formats.diffusers_to_ldm import TEXT_ENCODER_PREFIX, UNET_PREFIX

CHECKPOINT_NAME = "ip2p_demo_shapes.safetensors"  # what IP2P Checkpoint Loader lists
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
COMPACT_NAME = "ip2p_demo_shapes.compact.safetensors"
RECORD_NAME = "ip2p_demo_shapes.json"
IMAGE_SIZE = 64  # the scenes it was trained on; IP2P Encode's `resolution` brings other pictures to it
# Where the repository's setup, tests and benchmarks write the expanded file (git-ignored).
CACHE = MODELS_DIR.parent / ".cache" / "demo_model"

# CLIP ViT-L/14's text tower, the shape ComfyUI builds for every SD1.x checkpoint. Its layers are
# zero, so each passes its input on: an instruction becomes its tokens' hashed embeddings plus
# their positions, layer-normed, which is all a UNet needs to tell "red" from "circle".
CLIP_L = {"vocab": 49408, "width": 768, "layers": 12, "mlp": 3072, "positions": 77}
TOKEN_SALT, POSITION_SALT = 1, 2
TOKEN_STD, POSITION_STD = 1.0, 0.5
TEXT_DTYPE = torch.float16


def text_encoder_generated() -> dict[str, dict[str, Any]]:
    """Every weight of the demo text encoder (HF CLIPTextModel names), as `compact_weights` describes it."""
    width, mlp = CLIP_L["width"], CLIP_L["mlp"]
    spec = {
        "text_model.embeddings.token_embedding.weight": hashed((CLIP_L["vocab"], width), TEXT_DTYPE, TOKEN_SALT, TOKEN_STD),
        "text_model.embeddings.position_embedding.weight": hashed((CLIP_L["positions"], width), TEXT_DTYPE,
                                                                  POSITION_SALT, POSITION_STD),
        "text_model.final_layer_norm.weight": ones((width,), TEXT_DTYPE),
        "text_model.final_layer_norm.bias": zeros((width,), TEXT_DTYPE),
    }
    shapes = {"self_attn.k_proj": (width, width), "self_attn.v_proj": (width, width), "self_attn.q_proj": (width, width),
              "self_attn.out_proj": (width, width), "mlp.fc1": (mlp, width), "mlp.fc2": (width, mlp)}
    for layer in range(CLIP_L["layers"]):
        base = f"text_model.encoder.layers.{layer}."
        for name, shape in shapes.items():
            spec[f"{base}{name}.weight"] = zeros(shape, TEXT_DTYPE)
            spec[f"{base}{name}.bias"] = zeros(shape[:1], TEXT_DTYPE)
        for norm in ("layer_norm1", "layer_norm2"):
            spec[f"{base}{norm}.weight"] = ones((width,), TEXT_DTYPE)
            spec[f"{base}{norm}.bias"] = zeros((width,), TEXT_DTYPE)
    return spec


def text_encoder_state() -> dict[str, Tensor]:
    """The demo text encoder's weights, HF CLIPTextModel names."""
    return expand({}, text_encoder_generated())


def pack(ldm_state: dict[str, Tensor]) -> Compact:
    """The compact form of the demo model's single-file state dict: the UNet's matrices as int8
    rows, the VAE as stored, the text encoder described."""
    generated = {TEXT_ENCODER_PREFIX + key: entry for key, entry in text_encoder_generated().items()}
    quantized = {key for key, value in ldm_state.items()
                 if key.startswith(UNET_PREFIX) and value.ndim in (2, 4) and value.numel() >= 4096}
    return compact(ldm_state, generated, quantized)


def write_shipped(ldm_state: dict[str, Tensor], folder: Path = MODELS_DIR) -> Path:
    """Writes the compact file and its record into `folder`; returns the record's path."""
    packed = pack(ldm_state)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / COMPACT_NAME
    save_file(packed.tensors, str(path), metadata=manifest_metadata(packed.manifest))
    record = {"checkpoint": CHECKPOINT_NAME, "compact_file": COMPACT_NAME, "compact_sha256": _file_sha256(path),
              "expanded_sha256": digest(expand(packed.tensors, packed.manifest)), "image_size": IMAGE_SIZE}
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return folder / RECORD_NAME


def load_state_dict(folder: Path = MODELS_DIR) -> dict[str, Tensor]:
    """The demo model's full single-file state dict, checked against its record."""
    record = _record(folder)
    path = folder / record["compact_file"]
    if not path.is_file():
        raise IP2PUserError(f"the demo model's weights are missing: {path} not found. Restore the pack's models/ "
                            "folder (e.g. git checkout -- models, or reinstall the pack)")
    if _file_sha256(path) != record["compact_sha256"]:
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


def write_checkpoint(path: Path, folder: Path = MODELS_DIR) -> Path:
    """The demo model as an ordinary single-file checkpoint at `path` (ComfyUI's Load Checkpoint reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file({k: v.contiguous() for k, v in load_state_dict(folder).items()}, str(partial),
              metadata={"format": "pt", "modelspec.architecture": "instruct-pix2pix"})
    partial.replace(path)
    return path


def checkpoint_file(cache: Path, folder: Path = MODELS_DIR) -> Path:
    """The demo model as an ordinary single file under `cache`, written once per recorded version
    (the folder is named after the expanded weights' sha256; other versions' folders are removed)."""
    version = Path(cache) / _record(folder)["expanded_sha256"][:16]
    if not (version / CHECKPOINT_NAME).is_file():
        for old in Path(cache).glob("*/" + CHECKPOINT_NAME):
            shutil.rmtree(old.parent)
        write_checkpoint(version / CHECKPOINT_NAME, folder)
    return version / CHECKPOINT_NAME


def _record(folder: Path) -> dict[str, Any]:
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        raise IP2PUserError(f"the demo model's record {path} is missing: restore the pack's models/ folder "
                            "(git checkout -- models, or reinstall the pack)")
    return json.loads(path.read_text())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ip2p_core.demo_model",
                                     description="Writes the pack's demo model as an ordinary single-file checkpoint.")
    parser.add_argument("cache", type=Path, nargs="?", default=CACHE,
                        help="folder to write it under (one sub-folder per model version)")
    args = parser.parse_args(argv)
    try:
        print(checkpoint_file(args.cache))
    except IP2PUserError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
