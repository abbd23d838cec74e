"""diffusers -> LDM ("original Stable Diffusion") state-dict key mapping.

ComfyUI detects SD1.5 InstructPix2Pix only from LDM-layout UNets, while IP2P models are
often published as diffusers folders (MagicBrush, timbrooks/instruct-pix2pix); the loaders
convert their UNets (and TAESD-format VAEs) with it; the rest of a single file's key map, which
only training and the test harness write, is `training/ldm_checkpoint.py`. SDXL-family folders
(SDXL IP2P, CosXL Edit) too: ComfyUI detects a diffusers-layout SDXL UNet only at the configs it
lists, but any SDXL-shaped UNet in LDM layout. The mapping follows the layout of diffusers'
`convert_diffusers_to_original_stable_diffusion.py`, but is computed from the model config so it
holds for any number of levels and `layers_per_block` (the tiny test UNet has two levels, SD1.5
has four); SDXL adds one module, the addition embedding. Every key must map: an unknown key
raises KeyError rather than being dropped, so a silently incomplete checkpoint cannot be written.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."

# diffusers ResnetBlock2D names -> LDM openaimodel ResBlock names.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    # SDXL's addition embedding (pooled text and image sizes), as LDM's label_emb Sequential numbers it.
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}

_UNET_BLOCK_RE = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$")
_UNET_MID_RE = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def split_param(rest: str) -> tuple[str, str]:
    """'conv1.weight' -> ('conv1', 'weight'); 'to_out.0.bias' -> ('to_out.0', 'bias')."""
    module, _, param = rest.rpartition(".")
    return module, param


def _per_level(value: int | Sequence[int], levels: int) -> list[int]:
    return [int(value)] * levels if isinstance(value, int) else [int(v) for v in value]


def renamed(table: Mapping[str, str], rest: str, key: str) -> str:
    module, param = split_param(rest)
    if module not in table:
        raise KeyError(f"no LDM name for {key!r}")
    return f"{table[module]}.{param}"


def unet_key_to_ldm(key: str, config: Mapping[str, Any]) -> str:
    """LDM name (without `model.diffusion_model.`) of one diffusers UNet2DConditionModel key."""
    levels = len(config["down_block_types"])
    layers = _per_level(config["layers_per_block"], levels)
    # LDM numbers input blocks flat: conv_in, then per level its res(+attn) layers and a downsampler.
    down_start = [1 + sum(n + 1 for n in layers[:i]) for i in range(levels)]
    up_layers = [n + 1 for n in reversed(layers)]
    up_start = [sum(up_layers[:i]) for i in range(levels)]

    module, param = split_param(key)
    if module in _UNET_TOP:
        return f"{_UNET_TOP[module]}.{param}"
    m = _UNET_BLOCK_RE.match(key)
    if m:
        side, level, kind, idx, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        if side == "down_blocks":
            if kind == "resnets":
                return f"input_blocks.{down_start[level] + idx}.0.{renamed(_UNET_RESNET, rest, key)}"
            if kind == "attentions":
                return f"input_blocks.{down_start[level] + idx}.1.{rest}"
            if kind == "downsamplers" and idx == 0 and rest.startswith("conv."):
                return f"input_blocks.{down_start[level] + layers[level]}.0.op.{rest[len('conv.'):]}"
        else:
            if kind == "resnets":
                return f"output_blocks.{up_start[level] + idx}.0.{renamed(_UNET_RESNET, rest, key)}"
            if kind == "attentions":
                return f"output_blocks.{up_start[level] + idx}.1.{rest}"
            if kind == "upsamplers" and idx == 0 and rest.startswith("conv."):
                # The upsampler follows the last layer's resnet, and its attention if the level has one.
                slot = 2 if str(config["up_block_types"][level]).startswith("CrossAttn") else 1
                return f"output_blocks.{up_start[level] + up_layers[level] - 1}.{slot}.{rest}"
    m = _UNET_MID_RE.match(key)
    if m:
        kind, idx, rest = m.group(1), int(m.group(2)), m.group(3)
        if kind == "resnets":
            return f"middle_block.{2 * idx}.{renamed(_UNET_RESNET, rest, key)}"
        if kind == "attentions" and idx == 0:
            return f"middle_block.1.{rest}"
    raise KeyError(f"no LDM name for UNet key {key!r}")


def unet_to_ldm(state_dict: Mapping[str, Tensor], config: Mapping[str, Any],
                prefix: str = UNET_PREFIX) -> dict[str, Tensor]:
    """A diffusers UNet state dict in LDM layout, keys prefixed `prefix` (a single file's by default)."""
    return mapped(state_dict, lambda k: prefix + unet_key_to_ldm(k, config))


# TAESD-format VAEs (diffusers' AutoencoderTiny) in a checkpoint, as ComfyUI reads them.
TAESD_ENCODER = "taesd_encoder."
TAESD_DECODER = "taesd_decoder."
TAESD_SCALE, TAESD_SHIFT = "vae_scale", "vae_shift"


def tiny_vae_to_ldm(state_dict: Mapping[str, Tensor], scale: float) -> dict[str, Tensor]:
    """An AutoencoderTiny state dict as ComfyUI's TAESD, prefixed `first_stage_model.`.

    ComfyUI encodes `taesd_encoder(x) / vae_scale` and decodes `taesd_decoder(latent * vae_scale)`.
    The pack's AutoencoderTiny encodes straight into the model's unscaled latent space (see
    `trainable_model.vae_latent_scale`), so its last encoder conv is multiplied back by `scale`
    here. ComfyUI's decoder starts with its clamp as layer 0, so decoder layers shift by one.
    """
    last = max(int(k.split(".")[2]) for k in state_dict if k.startswith("encoder.layers."))
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        coder, _, index, param = key.split(".", 3)
        if coder == "encoder":
            out[f"{VAE_PREFIX}{TAESD_ENCODER}{index}.{param}"] = (value.float() * scale).to(value.dtype) \
                if int(index) == last else value
        elif coder == "decoder":
            out[f"{VAE_PREFIX}{TAESD_DECODER}{int(index) + 1}.{param}"] = value
        else:
            raise KeyError(f"no TAESD name for {key!r}")
    dtype = next(iter(state_dict.values())).dtype
    out[VAE_PREFIX + TAESD_SCALE] = torch.tensor(scale, dtype=dtype)
    out[VAE_PREFIX + TAESD_SHIFT] = torch.tensor(0.0, dtype=dtype)
    return out


def mapped(state_dict: Mapping[str, Tensor], rename: Callable[[str], str]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        new = rename(key)
        if new in out:
            raise KeyError(f"two keys map to {new!r}")
        out[new] = value
    return out


_DOWN_RE = re.compile(r"^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.")
_UP_RE = re.compile(r"^up_blocks\.(\d+)\.attentions\.")


def infer_unet_config(keys) -> dict[str, Any]:
    """The parts of a diffusers UNet config the mapping needs, read from its weight names.

    UNet-only files often come without their config.json.
    """
    levels: dict[int, set] = {}
    resnets: dict[int, int] = {}
    for key in keys:
        m = _DOWN_RE.match(key)
        if m:
            level, kind, index = int(m.group(1)), m.group(2), int(m.group(3))
            levels.setdefault(level, set()).add(kind)
            if kind == "resnets":
                resnets[level] = max(resnets.get(level, 0), index + 1)
    if not levels:
        raise KeyError("no down_blocks.* weights: not a diffusers UNet")
    count = max(levels) + 1
    up_attention = {int(m.group(1)) for m in map(_UP_RE.match, keys) if m}
    return {
        "down_block_types": ["CrossAttnDownBlock2D" if "attentions" in levels.get(i, ()) else "DownBlock2D"
                             for i in range(count)],
        "up_block_types": ["CrossAttnUpBlock2D" if i in up_attention else "UpBlock2D" for i in range(count)],
        "layers_per_block": [resnets.get(i, 0) for i in range(count)],
    }
