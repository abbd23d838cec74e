"""LDM single-file SD1.x checkpoint -> diffusers UNet, VAE and CLIP text encoder.

Training starts from an SD model, and most users have theirs as one `.safetensors` file.
diffusers' own single-file loader fetches configs from the Hub, which training machines
often cannot reach; the configs of SD1.x are instead read off the tensor shapes, and the
weights are mapped by inverting `diffusers_to_ldm` (the same names the pack writes), so a
file the pack saved loads back exactly. The attention head count is not in the weights:
SD1.x uses 8 heads, which is why other families are refused here.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.diffusers_to_ldm import (
    TAESD_DECODER,
    TAESD_ENCODER,
    TAESD_SCALE,
    TEXT_ENCODER_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    unet_key_to_ldm,
)
from ip2p_core.formats.latents import Family

from .ldm_checkpoint import vae_key_to_ldm

SD1_CONTEXT_DIM = 768
SD1_HEADS = 8
SD1_VAE_SCALING = Family.SD15.value.scaling_factor
CLIP_HEAD_DIM = 64


def unet_config_from_ldm(state: Mapping[str, Tensor], name: str) -> dict[str, Any]:
    """The UNet2DConditionModel kwargs of an SD1.x LDM UNet (keys under `model.diffusion_model.`)."""
    unet = {k[len(UNET_PREFIX):]: v for k, v in state.items() if k.startswith(UNET_PREFIX)}
    if "input_blocks.0.0.weight" not in unet:
        raise IP2PUserError(f"{name} has no UNet under {UNET_PREFIX}: not an SD single-file checkpoint")
    context = next((v.shape[1] for k, v in unet.items() if k.endswith("attn2.to_k.weight")), None)
    if context != SD1_CONTEXT_DIM or "label_emb.0.0.weight" in unet:
        raise IP2PUserError(f"{name} is not an SD1.x model (text width {context}): training from a single file "
                            "supports SD1.x; pass a diffusers folder for other models")
    levels = _unet_levels(unet)
    up_attention = _up_attention(unet, [len(level) + 1 for level in reversed(levels)])
    attention = [any(has_attn for _, has_attn in level) for level in levels]
    return {
        "sample_size": 64,
        "in_channels": unet["input_blocks.0.0.weight"].shape[1],
        "out_channels": unet["out.2.weight"].shape[0],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attention],
        "block_out_channels": [level[0][0] for level in levels],
        "layers_per_block": [len(level) for level in levels],
        "cross_attention_dim": context,
        "attention_head_dim": SD1_HEADS,
        "use_linear_projection": any(k.endswith("proj_in.weight") and v.ndim == 2 for k, v in unet.items()),
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }


def vae_config_from_ldm(state: Mapping[str, Tensor]) -> dict[str, Any]:
    vae = {k[len(VAE_PREFIX):]: v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    levels = 1 + max(int(m.group(1)) for m in map(re.compile(r"^encoder\.down\.(\d+)\.").match, vae) if m)
    blocks = 1 + max(int(m.group(1)) for m in map(re.compile(r"^encoder\.down\.0\.block\.(\d+)\.").match, vae) if m)
    return {
        "in_channels": vae["encoder.conv_in.weight"].shape[1],
        "out_channels": vae["decoder.conv_out.weight"].shape[0],
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": [vae[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] for i in range(levels)],
        "layers_per_block": blocks,
        "latent_channels": vae["encoder.conv_out.weight"].shape[0] // 2,
        "sample_size": 512,
        "scaling_factor": SD1_VAE_SCALING,
    }


def has_tiny_vae(state: Mapping[str, Tensor]) -> bool:
    """Whether the checkpoint's VAE is TAESD-format (what ComfyUI checks for, too)."""
    return f"{VAE_PREFIX}{TAESD_DECODER}1.weight" in state


def tiny_vae_config_from_ldm(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """AutoencoderTiny kwargs of a checkpoint's TAESD: ComfyUI decodes `decoder(z / 0.18215 * vae_scale)`,
    diffusers `decoder(z / scaling_factor)`, hence the scaling factor."""
    scale = state[VAE_PREFIX + TAESD_SCALE]
    # Both in the stored precision, so a vae_scale of exactly SD1.5's factor gives exactly 1.
    return {"latent_channels": state[f"{VAE_PREFIX}{TAESD_DECODER}1.weight"].shape[1],
            "scaling_factor": float(torch.tensor(SD1_VAE_SCALING, dtype=scale.dtype)) / float(scale)}


def load_tiny_vae_from_ldm(vae: nn.Module, state: Mapping[str, Tensor], name: str) -> None:
    """The inverse of `diffusers_to_ldm.tiny_vae_to_ldm`: the encoder's last conv divided by vae_scale."""
    scale = float(state[VAE_PREFIX + TAESD_SCALE])
    last = max(int(k.split(".")[2]) for k in vae.state_dict() if k.startswith("encoder.layers."))

    def ldm_name(key: str) -> str:
        coder, _, index, param = key.split(".", 3)
        if coder == "encoder":
            return f"{VAE_PREFIX}{TAESD_ENCODER}{index}.{param}"
        return f"{VAE_PREFIX}{TAESD_DECODER}{int(index) + 1}.{param}"

    _load_mapped(vae, state, ldm_name, name)
    with torch.no_grad():
        for param in ("weight", "bias"):
            getattr(vae.encoder.layers[last], param).div_(scale)


def text_encoder_config_from_ldm(text: Mapping[str, Tensor]) -> dict[str, Any]:
    """CLIPTextConfig kwargs of the CLIP text tower whose weights `text_encoder_state_from_ldm` returned."""
    tokens = text["text_model.embeddings.token_embedding.weight"]
    layers = 1 + max(int(m.group(1)) for m in map(re.compile(r"^text_model\.encoder\.layers\.(\d+)\.").match, text) if m)
    return {
        "vocab_size": tokens.shape[0],
        "hidden_size": tokens.shape[1],
        "intermediate_size": text["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
        "projection_dim": tokens.shape[1],
        "num_hidden_layers": layers,
        "num_attention_heads": tokens.shape[1] // CLIP_HEAD_DIM,
        "max_position_embeddings": text["text_model.embeddings.position_embedding.weight"].shape[0],
        "hidden_act": "quick_gelu",
    }


def text_encoder_state_from_ldm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HF CLIPTextModel keys; older checkpoints omit the `text_model.` level."""
    out = {}
    for key, value in state.items():
        if key.startswith(TEXT_ENCODER_PREFIX) and not key.endswith("position_ids"):
            rest = key[len(TEXT_ENCODER_PREFIX):]
            out[rest if rest.startswith("text_model.") else f"text_model.{rest}"] = value
    if "text_model.embeddings.token_embedding.weight" not in out:
        raise IP2PUserError(f"the checkpoint has no CLIP text encoder under {TEXT_ENCODER_PREFIX}")
    return out


def load_unet_from_ldm(unet: nn.Module, state: Mapping[str, Tensor], config: Mapping[str, Any], name: str) -> None:
    _load_mapped(unet, state, lambda k: UNET_PREFIX + unet_key_to_ldm(k, config), name)


def load_vae_from_ldm(vae: nn.Module, state: Mapping[str, Tensor], config: Mapping[str, Any], name: str) -> None:
    _load_mapped(vae, state, lambda k: VAE_PREFIX + vae_key_to_ldm(k, config), name)


def _load_mapped(module: nn.Module, state: Mapping[str, Tensor], ldm_name: Callable[[str], str], name: str) -> None:
    """Fill every parameter of `module` from its LDM-named tensor; a missing one is an error, not a silent init."""
    own = module.state_dict()
    loaded = {}
    for key, target in own.items():
        source = state.get(ldm_name(key))
        if source is None:
            raise IP2PUserError(f"{name} lacks {ldm_name(key)}: the checkpoint is incomplete or of another architecture")
        loaded[key] = source.reshape(target.shape)  # LDM's VAE attention is 1x1 convs, diffusers' linears
    module.load_state_dict(loaded)


def _unet_levels(unet: Mapping[str, Tensor]) -> list[list[tuple[int, bool]]]:
    """Per resolution level, the (out channels, has attention) of each res block of the input blocks."""
    levels: list[list[tuple[int, bool]]] = [[]]
    index = 1
    while f"input_blocks.{index}.0.in_layers.0.weight" in unet or f"input_blocks.{index}.0.op.weight" in unet:
        if f"input_blocks.{index}.0.op.weight" in unet:
            levels.append([])
        else:
            levels[-1].append((unet[f"input_blocks.{index}.0.out_layers.3.weight"].shape[0],
                               f"input_blocks.{index}.1.proj_in.weight" in unet))
        index += 1
    return levels


def _up_attention(unet: Mapping[str, Tensor], blocks_per_level: list[int]) -> list[bool]:
    starts = [sum(blocks_per_level[:i]) for i in range(len(blocks_per_level))]
    return [f"output_blocks.{start}.1.proj_in.weight" in unet for start in starts]
