"""Packs a trained demo model into the compact file and record the pack ships in models/.

The text encoder is described, not stored: its transformer layers are zero (each passes its input
on) and its embeddings are hashed values, so an instruction becomes its tokens' embeddings plus
their positions, layer-normed. The UNet's large matrices become int8 rows; the VAE is stored.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor

from ip2p_core.demo_model import CHECKPOINT_NAME, COMPACT_NAME, IMAGE_SIZE, MODELS_DIR, RECORD_NAME, file_sha256
from ip2p_core.formats.compact_weights import digest, expand
from ip2p_core.formats.diffusers_to_ldm import TEXT_ENCODER_PREFIX, UNET_PREFIX

from .compact_packing import Compact, compact, hashed, manifest_metadata, ones, zeros

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


def write_shipped(ldm_state: dict[str, Tensor], folder: Path = MODELS_DIR,
                  made_by: dict[str, Any] | None = None) -> Path:
    """Writes the compact file and its record into `folder` (with `made_by`, how the model was made);
    returns the record's path."""
    packed = pack(ldm_state)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / COMPACT_NAME
    save_file(packed.tensors, str(path), metadata=manifest_metadata(packed.manifest))
    record = {"checkpoint": CHECKPOINT_NAME, "compact_file": COMPACT_NAME, "compact_sha256": file_sha256(path),
              "expanded_sha256": digest(expand(packed.tensors, packed.manifest)), "image_size": IMAGE_SIZE}
    if made_by is not None:
        record["made_by"] = made_by
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return folder / RECORD_NAME
