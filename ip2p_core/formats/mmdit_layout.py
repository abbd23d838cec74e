"""SD3-family transformers (MMDiT) in the key layout ComfyUI builds them from.

UltraEdit is published as a diffusers `SD3Transformer2DModel`; ComfyUI's MMDiT reads the
layout of Stability's SD3 checkpoints. The 2024 host has no converter between them, so the
pack carries one, for both hosts. Two differences besides names: diffusers keeps q, k and v
(and the text stream's) as three projections where MMDiT has one `qkv`, and its final
modulations (`norm_out`, and the last block's text-stream norm) emit (scale, shift) where
MMDiT's emit (shift, scale).
"""
from __future__ import annotations

import torch

# MMDiT key -> diffusers key, outside the blocks.
_TOP = {
    "context_embedder": "context_embedder",
    "t_embedder.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "y_embedder.mlp.0": "time_text_embed.text_embedder.linear_1",
    "y_embedder.mlp.2": "time_text_embed.text_embedder.linear_2",
    "x_embedder.proj": "pos_embed.proj",
    "final_layer.linear": "proj_out",
}
# Inside block i: MMDiT `joint_blocks.i.` + key -> diffusers `transformer_blocks.i.` + key.
_BLOCK = {
    "x_block.adaLN_modulation.1": "norm1.linear",
    "context_block.adaLN_modulation.1": "norm1_context.linear",
    "x_block.attn.proj": "attn.to_out.0",
    "context_block.attn.proj": "attn.to_add_out",
    "x_block.mlp.fc1": "ff.net.0.proj",
    "x_block.mlp.fc2": "ff.net.2",
    "context_block.mlp.fc1": "ff_context.net.0.proj",
    "context_block.mlp.fc2": "ff_context.net.2",
}
_BLOCK_NORMS = {  # RMS q/k norms (SD3.5-style models): weights only
    "x_block.attn.ln_q": "attn.norm_q", "x_block.attn.ln_k": "attn.norm_k",
    "context_block.attn.ln_q": "attn.norm_added_q", "context_block.attn.ln_k": "attn.norm_added_k",
}
_QKV = {"x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}

# The patch embedding's weight: its second dimension is the input channels.
DIFFUSERS_PATCH_KEY = "pos_embed.proj.weight"
MMDIT_PATCH_KEY = "x_embedder.proj.weight"


def is_diffusers_sd3(keys) -> bool:
    keys = set(keys)
    return DIFFUSERS_PATCH_KEY in keys and "transformer_blocks.0.attn.add_q_proj.weight" in keys


def diffusers_sd3_to_mmdit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers SD3Transformer2DModel state dict in MMDiT's layout; every tensor is used,
    or the unknown keys are named."""
    left = dict(state)
    out: dict[str, torch.Tensor] = {}

    def move(mmdit: str, diffusers: str, swap: bool = False, params=("weight", "bias")) -> None:
        for param in params:
            if f"{diffusers}.{param}" in left:
                tensor = left.pop(f"{diffusers}.{param}")
                out[f"{mmdit}.{param}"] = _swap_halves(tensor) if swap else tensor

    if "pos_embed.pos_embed" in left:
        out["pos_embed"] = left.pop("pos_embed.pos_embed")
    for mmdit, diffusers in _TOP.items():
        move(mmdit, diffusers)
    move("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    for i in range(depth):
        source, target = f"transformer_blocks.{i}.", f"joint_blocks.{i}."
        for mmdit, diffusers in _BLOCK.items():
            # The last block's text stream only modulates (diffusers: AdaLayerNormContinuous, scale first).
            swap = i == depth - 1 and mmdit.startswith("context_block.adaLN")
            move(target + mmdit, source + diffusers, swap=swap)
        for mmdit, diffusers in _BLOCK_NORMS.items():
            move(target + mmdit, source + diffusers, params=("weight",))
        for mmdit, parts in _QKV.items():
            for param in ("weight", "bias"):
                names = [f"{source}{part}.{param}" for part in parts]
                if all(name in left for name in names):
                    out[f"{target}{mmdit}.{param}"] = torch.cat([left.pop(name) for name in names])
    if left:
        raise KeyError(f"diffusers SD3 weights with no MMDiT name: {sorted(left)[:5]}")
    return out


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)
