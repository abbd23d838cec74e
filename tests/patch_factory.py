"""Deterministic LoRA and ControlNet files for the demo model, in the layouts users download.

* LoRAs use kohya's key names (`lora_unet_<diffusers module>`, `lora_te_<CLIP module>`, with
  `.lora_down.weight`, `.lora_up.weight`, `.alpha`), the format most SD1.5 LoRAs are shared in
  and one ComfyUI's LoRA loader maps for SD1.5. Three variants share every value except the
  first conv (`conv_in`):
  - `core`: attention projections of the UNet and the text encoder only;
  - `plain_sd15`: `core` + a `conv_in` LoRA with 4 input channels, as a LoRA trained on a
    text-to-image SD1.5 model has; it cannot apply to an IP2P UNet (8 input channels);
  - `ip2p`: `core` + a `conv_in` LoRA with 8 input channels, as one trained on IP2P has.
* The ControlNet is SD1.5-shaped like the model's UNet (same levels and widths, 4 input channels,
  the standard 16-32-96-256 hint encoder) in the original `control_model.` single-file layout
  that ComfyUI's ControlNet loader detects by shape. Every weight is random, including the
  "zero" convs (zero-initialised in training), so the control visibly changes the edit.

Files are cached next to the model under a name that hashes this file and the model factory,
and written to a temporary directory that is renamed into place when complete.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from harness.model_factory import TinyModel, factory_version, randomise_
from ip2p_core.formats.diffusers_to_ldm import unet_key_to_ldm

LORA_RANK = 4
# up @ down with down ~ N(0, 1/fan_in) and up ~ N(0, 1/rank) * gain changes a weight by about
# gain times its own size: clearly visible in the output, far from blowing it up.
LORA_GAIN = 0.5
LORA_SEED = 4567
CONTROLNET_SEED = 5678
CONTROL_HINT_CHANNELS = (16, 32, 96, 256)  # every SD1.5 ControlNet's hint encoder
TEXT_ENCODER_LAYERS = 12
TEXT_ENCODER_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")


@dataclass(frozen=True)
class PatchFiles:
    lora_core: Path
    lora_plain_sd15: Path
    lora_ip2p: Path
    controlnet: Path


def patches_version() -> str:
    """Cache folder name: changes with this file and with the model factory."""
    return f"patches-{factory_version()}-{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}"


def build_patch_files(model: TinyModel, cache_root: Path) -> PatchFiles:
    """The LoRAs and the ControlNet for `model` (an SD1.5-layout IP2P model), built once and cached."""
    root = Path(cache_root).resolve() / patches_version()
    files = PatchFiles(*(root / name for name in ("lora_core.safetensors", "lora_plain_sd15.safetensors",
                                                  "lora_ip2p.safetensors", "controlnet_sd15.safetensors")))
    if all(p.is_file() for p in vars(files).values()):
        return files
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".patches-tmp-", dir=root.parent))
    try:
        unet_shapes = _shapes(model.diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors")
        clip_shapes = _shapes(model.diffusers_dir / "text_encoder" / "model.safetensors")
        core = {**unet_lora(unet_shapes), **text_encoder_lora(clip_shapes)}
        width = unet_shapes["conv_in.weight"][0]
        save_file(core, str(tmp / files.lora_core.name))
        save_file({**core, **conv_in_lora(width, 4)}, str(tmp / files.lora_plain_sd15.name))
        save_file({**core, **conv_in_lora(width, 8)}, str(tmp / files.lora_ip2p.name))
        save_file(controlnet_state_dict(model.unet_config), str(tmp / files.controlnet.name))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return files


def _shapes(path: Path) -> dict[str, list[int]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_slice(k).get_shape() for k in f.keys()}


def _randn(shape, name: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def _lora_pair(key: str, out_features: int, in_shape: list[int]) -> dict[str, torch.Tensor]:
    """kohya LoRA tensors for one module: down [rank, *in_shape], up [out, rank, (1, 1)], alpha = rank."""
    fan_in = math.prod(in_shape)
    down = _randn([LORA_RANK, *in_shape], key + ".down", LORA_SEED) / math.sqrt(fan_in)
    up_shape = [out_features, LORA_RANK] + [1] * (len(in_shape) - 1)
    up = _randn(up_shape, key + ".up", LORA_SEED) * (LORA_GAIN / math.sqrt(LORA_RANK))
    return {f"{key}.lora_down.weight": down.half(), f"{key}.lora_up.weight": up.half(),
            f"{key}.alpha": torch.tensor(float(LORA_RANK))}


def unet_lora(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Every attention projection of the UNet, named from its diffusers module as kohya does."""
    out = {}
    for name, shape in sorted(shapes.items()):
        module = name[:-len(".weight")]
        if name.endswith(".weight") and module.endswith(UNET_TARGETS):
            out.update(_lora_pair("lora_unet_" + module.replace(".", "_"), shape[0], shape[1:]))
    if not out:
        raise ValueError("no attention projections found in the UNet")
    return out


def text_encoder_lora(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    out = {}
    for layer in range(TEXT_ENCODER_LAYERS):
        for target in TEXT_ENCODER_TARGETS:
            module = f"text_model.encoder.layers.{layer}.{target}"
            shape = shapes[module + ".weight"]
            out.update(_lora_pair("lora_te_" + module.replace(".", "_"), shape[0], shape[1:]))
    return out


def conv_in_lora(width: int, in_channels: int) -> dict[str, torch.Tensor]:
    """A LoCon-style LoRA of the first conv: down [rank, in_channels, 3, 3], up [width, rank, 1, 1]."""
    return _lora_pair("lora_unet_conv_in", width, [in_channels, 3, 3])


# -- ControlNet --------------------------------------------------------------------------


def controlnet_state_dict(unet_config: dict) -> dict[str, torch.Tensor]:
    """A random SD1.5-shaped ControlNet for the model's UNet, as `control_model.*` LDM keys (fp16)."""
    from diffusers import ControlNetModel

    config = {k: unet_config[k] for k in ("down_block_types", "block_out_channels", "layers_per_block",
                                          "cross_attention_dim", "attention_head_dim", "norm_num_groups",
                                          "flip_sin_to_cos", "freq_shift")}
    with torch.no_grad():
        net = ControlNetModel(in_channels=4, conditioning_channels=3,
                              conditioning_embedding_out_channels=CONTROL_HINT_CHANNELS, **config).eval()
        randomise_(net, CONTROLNET_SEED)
    return {"control_model." + controlnet_key_to_ldm(k, unet_config): v.detach().to(torch.float16).contiguous()
            for k, v in net.state_dict().items()}


def controlnet_key_to_ldm(key: str, unet_config: dict) -> str:
    """LDM name of a diffusers ControlNetModel key: the UNet encoder keeps the UNet's names;
    the hint encoder is `input_hint_block` (a conv at every even index), the per-block output
    convs are `zero_convs.N.0` and the middle block's is `middle_block_out.0`."""
    module, _, param = key.rpartition(".")
    if module == "controlnet_cond_embedding.conv_in":
        return f"input_hint_block.0.{param}"
    if module.startswith("controlnet_cond_embedding.blocks."):
        index = int(module.rsplit(".", 1)[1])
        return f"input_hint_block.{2 * (index + 1)}.{param}"
    if module == "controlnet_cond_embedding.conv_out":
        blocks = 2 * (len(CONTROL_HINT_CHANNELS) - 1)
        return f"input_hint_block.{2 * (blocks + 1)}.{param}"
    if module.startswith("controlnet_down_blocks."):
        return f"zero_convs.{int(module.rsplit('.', 1)[1])}.0.{param}"
    if module == "controlnet_mid_block":
        return f"middle_block_out.0.{param}"
    return unet_key_to_ldm(key, unet_config)
