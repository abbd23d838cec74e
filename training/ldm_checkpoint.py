"""diffusers parts -> one LDM single-file state dict: the VAE's and the text encoder's key maps, and
the whole checkpoint. Only training and the test harness write single files; the pack's loaders
need only the UNet's and TAESD's maps, which stay in `ip2p_core.formats.diffusers_to_ldm`.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ip2p_core.formats.diffusers_to_ldm import (
    TEXT_ENCODER_PREFIX,
    VAE_PREFIX,
    mapped,
    renamed,
    split_param,
    tiny_vae_to_ldm,
    unet_to_ldm,
)
from ip2p_core.formats.latents import Family

# diffusers VAE attention names -> LDM AttnBlock names (LDM uses 1x1 convs).
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_TOP = {"quant_conv": "quant_conv", "post_quant_conv": "post_quant_conv"}
_VAE_BLOCK_RE = re.compile(r"^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$")
_VAE_MID_RE = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def vae_key_to_ldm(key: str, config: Mapping[str, Any]) -> str:
    """LDM name (without `first_stage_model.`) of one diffusers AutoencoderKL key."""
    levels = len(config["block_out_channels"])
    module, param = split_param(key)
    if module in _VAE_TOP:
        return key
    for coder in ("encoder", "decoder"):
        if module in (f"{coder}.conv_in", f"{coder}.conv_out"):
            return key
        if module == f"{coder}.conv_norm_out":
            return f"{coder}.norm_out.{param}"
    m = _VAE_BLOCK_RE.match(key)
    if m:
        coder, side, level, kind, idx, rest = m.groups()
        level, idx = int(level), int(idx)
        # LDM's decoder counts levels from the lowest resolution up, diffusers from the top down.
        ldm_level = level if side == "down_blocks" else levels - 1 - level
        ldm_side = "down" if side == "down_blocks" else "up"
        if kind == "resnets":
            rest = rest.replace("conv_shortcut.", "nin_shortcut.")
            return f"{coder}.{ldm_side}.{ldm_level}.block.{idx}.{rest}"
        if idx == 0 and rest.startswith("conv."):
            sampler = "downsample" if kind == "downsamplers" else "upsample"
            return f"{coder}.{ldm_side}.{ldm_level}.{sampler}.{rest}"
    m = _VAE_MID_RE.match(key)
    if m:
        coder, kind, idx, rest = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        if kind == "resnets":
            rest = rest.replace("conv_shortcut.", "nin_shortcut.")
            return f"{coder}.mid.block_{idx + 1}.{rest}"
        if kind == "attentions" and idx == 0:
            return f"{coder}.mid.attn_1.{renamed(_VAE_ATTN, rest, key)}"
    raise KeyError(f"no LDM name for VAE key {key!r}")


def vae_to_ldm(state_dict: Mapping[str, Tensor], config: Mapping[str, Any]) -> dict[str, Tensor]:
    """A diffusers VAE state dict in LDM layout, prefixed `first_stage_model.`.

    LDM's mid-block attention uses 1x1 convs where diffusers uses linears, so those
    weights get two trailing unit dimensions.
    """
    out = mapped(state_dict, lambda k: VAE_PREFIX + vae_key_to_ldm(k, config))
    for key, value in out.items():
        if ".mid.attn_1." in key and key.endswith(".weight") and value.ndim == 2:
            out[key] = value.reshape(*value.shape, 1, 1)
    return out


def text_encoder_to_ldm(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An HF CLIPTextModel state dict (`text_model.*`) under `cond_stage_model.transformer.`."""
    return mapped(state_dict, lambda k: TEXT_ENCODER_PREFIX + k)


def ldm_checkpoint(
    unet: Mapping[str, Tensor],
    unet_config: Mapping[str, Any],
    vae: Mapping[str, Tensor],
    vae_config: Mapping[str, Any],
    text_encoder: Mapping[str, Tensor],
) -> dict[str, Tensor]:
    """The three diffusers state dicts merged into one LDM single-file state dict.

    The VAE is an AutoencoderKL, or an AutoencoderTiny (its config has `encoder_block_out_channels`)
    that becomes ComfyUI's TAESD with the vae_scale its scaling factor stands for.
    """
    out = unet_to_ldm(unet, unet_config)
    vae_ldm = (tiny_vae_to_ldm(vae, Family.SD15.value.scaling_factor / vae_config["scaling_factor"]) if "encoder_block_out_channels" in vae_config
               else vae_to_ldm(vae, vae_config))
    for part in (vae_ldm, text_encoder_to_ldm(text_encoder)):
        clash = out.keys() & part.keys()
        if clash:
            raise KeyError(f"LDM keys produced twice: {sorted(clash)[:5]}")
        out.update(part)
    return out
