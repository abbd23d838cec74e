"""A whole generated SDXL-family IP2P model, text encoders included, in the shapes users have it.

model_factory's SDXL UNet-only files are enough to test model detection; loading an SDXL
checkpoint or diffusers folder needs the whole model, and ComfyUI builds SDXL's text
encoders and VAE from fixed configs, refusing other shapes. So only the UNet is tiny, and the
rest is zero where the output still depends on every kind of weight (zero parts pass their input
on; their bytes are holes in sparse files, `dig_holes`, not disk):

* UNet: model_factory's tiny SDXL IP2P UNet, the same weights as `build_sdxl_ip2p_unet`'s file.
* VAE: SDXL's AutoencoderKL (SD1.5's shape; latents scaled by 0.13025). Only the first res block
  of each encoder and decoder level (and the middle blocks) is random: the others' convolutions
  are zero (65 MB of holes per copy).
* CLIP-L: the CLIP ViT-L/14 text tower, as in SD1.5; like CLIP-G's, only its first and last two
  layers are random.
* CLIP-G: the OpenCLIP ViT-bigG/14 text tower with its projection at full size (32 layers,
  width 1280, 694M parameters). Only its first and last two layers are random: the others'
  attention and MLP weights are zero (each block passes its input on), so that their 1.1 GB in
  each of the three copies are holes in sparse files (`dig_holes`), not disk. Every layer is
  converted by the same code, so a wrong mapping still shows in the random ones.
* Both text towers embed only the first 16384 token ids (BPE ids come in merge order, so every
  common word, and every word the tests prompt with) and the start and end tokens; the other
  33k rows are zero, so a rare word embeds as its position alone (0.4 GB of holes in all).

Random weights as in model_factory (`randomise_`), fp16-rounded and stored as fp16 (ComfyUI
computes in fp32 on the CPU, or fp16 without --fp32-text-enc; both stay finite). One build
(6 GB of file size, 1.8 GB on disk, a minute or two; each file's zeros are holes before the next
is written) writes the same weights three ways:

* `sdxl_ip2p.safetensors`: an LDM single file as SDXL checkpoints hold it (UNet, VAE, CLIP-L
  in HF layout under `conditioner.embedders.0.transformer.`, CLIP-G in OpenCLIP layout under
  `conditioner.embedders.1.model.`): SDXL InstructPix2Pix (EPS);
* `cosxl_edit.safetensors`: the same plus CosXL Edit's `edm_vpred.sigma_min/max`;
* `diffusers/`: what `StableDiffusionXLInstructPix2PixPipeline.save_pretrained` writes.

Cached under `cache_root/sdxl-<hash>/`, the hash over this file and model_factory's version,
so editing this file leaves model_factory's (much larger) cache alone.
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ip2p_core.formats.diffusers_to_ldm import UNET_PREFIX
from training.ldm_checkpoint import vae_to_ldm
from training.sparse_files import dig_holes, dig_holes_in
from training.trainable_model import SD15_NOISE_SCHEDULE, comfy_tokenizer_dir

from .model_factory import (
    CLIP_L_RANDOM_LAYERS,
    COSXL_SIGMA_MAX,
    COSXL_SIGMA_MIN,
    DEFAULT_CACHE_ROOT,
    build_once,
    build_sdxl_ip2p_unet,
    factory_version,
    randomise_,
    sd15_text_encoder_config,
    sd15_vae_config,
    sdxl_ip2p_unet,
    sdxl_ip2p_unet_config,
    zero_text_tower_but_,
    zero_vae_inner_resnets_,
)

log = logging.getLogger(__name__)

SDXL_VAE_SEED = 5678
CLIP_L_SEED = 6789
CLIP_G_SEED = 7890
NAME = "sdxl_family"
CHECKPOINT_NAMES = {False: "sdxl_ip2p.safetensors", True: "cosxl_edit.safetensors"}
CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
CLIP_G_PREFIX = "conditioner.embedders.1.model."
OPENCLIP_LOGIT_SCALE = math.log(100.0)  # OpenCLIP's trained value; SDXL checkpoints carry it
CLIP_G_RANDOM_LAYERS = (0, 30, 31)  # the pooled output reads layer 31, SDXL's penultimate one layer 30
DIFFUSERS_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")


@dataclass(frozen=True)
class SDXLFamily:
    """One built SDXL-family model: the same weights as two checkpoints and a diffusers folder."""

    root: Path
    sdxl_checkpoint: Path  # SDXL InstructPix2Pix (EPS)
    cosxl_checkpoint: Path  # CosXL Edit (V_PREDICTION_EDM, sigmas 0.002 to 120)
    diffusers_dir: Path
    unet_config: dict[str, Any] = field(hash=False)


def sdxl_vae_config() -> dict[str, Any]:
    return {**sd15_vae_config(), "sample_size": 1024, "scaling_factor": 0.13025}


def clip_g_config() -> dict[str, Any]:
    """CLIPTextConfig kwargs of SDXL's text_encoder_2 (ComfyUI's clip_config_bigg.json)."""
    return {**sd15_text_encoder_config(), "hidden_size": 1280, "intermediate_size": 5120, "projection_dim": 1280,
            "num_hidden_layers": 32, "num_attention_heads": 20, "hidden_act": "gelu"}


def sdxl_family_version() -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(factory_version().encode())
    return f"sdxl-{digest.hexdigest()[:12]}"


def build_sdxl_family(cache_root: Path = DEFAULT_CACHE_ROOT) -> SDXLFamily:
    """The SDXL-family test model, built once (into a temporary folder renamed into place) and cached."""
    model = _describe(Path(cache_root).resolve() / sdxl_family_version() / NAME)
    if _is_complete(model):
        return model
    unet_file = build_sdxl_ip2p_unet(cache_root).unet  # outside build_once's lock: it takes its own
    build_once(model.root, lambda tmp: _build_into(_describe(tmp), unet_file),
               lambda root: _is_complete(_describe(root)))
    return model


def _describe(root: Path) -> SDXLFamily:
    return SDXLFamily(root=root, sdxl_checkpoint=root / CHECKPOINT_NAMES[False],
                      cosxl_checkpoint=root / CHECKPOINT_NAMES[True], diffusers_dir=root / "diffusers",
                      unet_config=sdxl_ip2p_unet_config())


def _is_complete(model: SDXLFamily) -> bool:
    d = model.diffusers_dir
    return (model.sdxl_checkpoint.is_file() and model.cosxl_checkpoint.is_file()
            and (d / "model_index.json").is_file() and all(any((d / p).glob("*")) for p in DIFFUSERS_PARTS))


def _build_into(model: SDXLFamily, unet_file: Path) -> None:
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLInstructPix2PixPipeline,
    )
    from safetensors.torch import load_file, save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    with torch.no_grad():
        unet = sdxl_ip2p_unet(model.unet_config)  # the UNet-only file's weights, in diffusers layout
        vae = AutoencoderKL(**sdxl_vae_config()).eval()
        clip_l = CLIPTextModel(CLIPTextConfig(**sd15_text_encoder_config())).eval()
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**clip_g_config())).eval()
        for module, seed in ((vae, SDXL_VAE_SEED), (clip_l, CLIP_L_SEED), (clip_g, CLIP_G_SEED)):
            randomise_(module, seed)  # fp16-rounded values
        for encoder, random_layers in ((clip_l, CLIP_L_RANDOM_LAYERS), (clip_g, CLIP_G_RANDOM_LAYERS)):
            zero_text_tower_but_(encoder, random_layers)
        zero_vae_inner_resnets_(vae)
    for module in (unet, vae, clip_l, clip_g):
        module.to(torch.float16)

    vocab = comfy_tokenizer_dir()
    tokenizers = [CLIPTokenizer(vocab_file=str(vocab / "vocab.json"), merges_file=str(vocab / "merges.txt"),
                                model_max_length=77, **extra) for extra in ({}, {"pad_token": "!"})]
    StableDiffusionXLInstructPix2PixPipeline(
        vae=vae, text_encoder=clip_l, text_encoder_2=clip_g, tokenizer=tokenizers[0], tokenizer_2=tokenizers[1],
        unet=unet, scheduler=EulerDiscreteScheduler.from_config(SD15_NOISE_SCHEDULE), add_watermarker=False,
    ).save_pretrained(model.diffusers_dir, safe_serialization=True)
    dig_holes_in(model.diffusers_dir)  # each copy's zeros go before the next is written

    state = {UNET_PREFIX + k: v for k, v in load_file(str(unet_file)).items()}
    state.update(vae_to_ldm(vae.state_dict(), sdxl_vae_config()))
    state.update({CLIP_L_PREFIX + k: v for k, v in clip_l.state_dict().items()})
    state.update({CLIP_G_PREFIX + k: v for k, v in openclip_text_state(clip_g.state_dict()).items()})
    state = {k: v.contiguous() for k, v in state.items()}
    metadata = {"format": "pt", "ip2p_test_factory": sdxl_family_version()}
    save_file(state, str(model.sdxl_checkpoint), metadata=metadata)
    dig_holes(model.sdxl_checkpoint)
    state["edm_vpred.sigma_min"] = torch.tensor(COSXL_SIGMA_MIN)
    state["edm_vpred.sigma_max"] = torch.tensor(COSXL_SIGMA_MAX)
    save_file(state, str(model.cosxl_checkpoint), metadata=metadata)
    dig_holes(model.cosxl_checkpoint)


def openclip_text_state(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An HF CLIPTextModelWithProjection state dict in OpenCLIP's text-tower layout, as SDXL
    checkpoints store CLIP-G (ComfyUI's `clip_text_transformers_convert` undoes exactly this)."""
    hf = dict(hf)
    projection = hf.pop("text_projection.weight")
    out = {
        "token_embedding.weight": hf.pop("text_model.embeddings.token_embedding.weight"),
        "positional_embedding": hf.pop("text_model.embeddings.position_embedding.weight"),
        "ln_final.weight": hf.pop("text_model.final_layer_norm.weight"),
        "ln_final.bias": hf.pop("text_model.final_layer_norm.bias"),
        "text_projection": projection.t(),  # OpenCLIP computes x @ P
        "logit_scale": torch.tensor(OPENCLIP_LOGIT_SCALE, dtype=projection.dtype),
    }
    renames = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
               "self_attn.out_proj": "attn.out_proj"}
    layers = {int(k.split(".")[3]) for k in hf if k.startswith("text_model.encoder.layers.")}
    for layer in sorted(layers):
        hf_layer, layer_out = f"text_model.encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for param in ("weight", "bias"):
            for hf_name, name in renames.items():
                out[f"{layer_out}{name}.{param}"] = hf.pop(f"{hf_layer}{hf_name}.{param}")
            out[f"{layer_out}attn.in_proj_{param}"] = torch.cat(
                [hf.pop(f"{hf_layer}self_attn.{p}_proj.{param}") for p in "qkv"])
    hf.pop("text_model.embeddings.position_ids", None)  # a buffer older transformers save
    if hf:
        raise KeyError(f"CLIP-G weights without an OpenCLIP name: {sorted(hf)[:5]}")
    return out
