"""Generated UltraEdit-shaped models (SD3 transformers trained the IP2P way), in the shapes users have them.

UltraEdit ships as diffusers folders (`StableDiffusion3InstructPix2PixPipeline`): a 32-channel
free-form transformer and a 48-channel mask one, SD3's VAE, CLIP-L, CLIP-G and T5-XXL. ComfyUI
builds SD3's text encoders and VAE from fixed shapes, and its MMDiT ties the width to the depth
(64 per layer, one head per layer), so:

* transformer: 2 layers of width 128 (2 heads of 64), patch 2, 16 output channels, text width
  4096 and pooled width 2048 as SD3's; 48 input channels [noisy | image | mask], the free-form
  model being the same weights without the mask channels;
* VAE: SD3's AutoencoderKL (16 latent channels, no quant convs, scale 1.5305, shift 0.0609); its
  res blocks are zero (each passes its input on, through its 1x1 shortcut where the width
  changes; their bytes are holes in sparse files): the convolutions in and out, the down- and
  upsamplers and the mid-block attention make the pictures;
* CLIP-L (with its projection) and CLIP-G at full size, zero but for CLIP-L's penultimate layer
  (what SD3 reads), CLIP-G's last (its pooled output) and the first TOKEN_ROWS token rows (every
  word the tests prompt with);
* no T5: ComfyUI runs SD3 without it, and a T5-XXL, even zero, is 9 GB of memory per load.

Written as two diffusers folders (`freeform/`, `mask/`: their VAE and text encoder files are one
file, hard-linked) and the mask model as a single file in the SD3 checkpoint layout ComfyUI's own
SD3 files have (`ultraedit_mask.safetensors`; the tests cut the free-form transformer-only file
from it). Cached under
`cache_root/sd3-<hash>/`, the hash over this file, the SDXL factory's and the key converter.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ip2p_core.formats import mmdit_layout
from training.ldm_checkpoint import vae_to_ldm
from training.sparse_files import dig_holes, dig_holes_in
from training.trainable_model import comfy_tokenizer_dir

from . import sdxl_model_factory
from .model_factory import (
    DEFAULT_CACHE_ROOT,
    build_once,
    randomise_,
    sd15_text_encoder_config,
    sd15_vae_config,
    zero_parts_,
    zero_text_tower_but_,
)
from .sdxl_model_factory import CLIP_G_SEED, CLIP_L_SEED, clip_g_config

TRANSFORMER_SEED = 8901
SD3_VAE_SEED = 9012
NAME = "ultraedit"
MASK_CHANNELS = 48
FREE_FORM_CHANNELS = 32
CLIP_L_RANDOM_LAYERS = (10,)  # SD3 reads CLIP-L's penultimate layer
CLIP_G_RANDOM_LAYERS = (31,)  # CLIP-G's pooled output reads its last layer (its penultimate is then its embeddings)
TOKEN_ROWS = 4096
UNET_PREFIX = "model.diffusion_model."
VAE_SCALE, VAE_SHIFT = 1.5305, 0.0609


def transformer_config(in_channels: int = MASK_CHANNELS) -> dict[str, Any]:
    return {"sample_size": 32, "patch_size": 2, "in_channels": in_channels, "num_layers": 2,
            "attention_head_dim": 64, "num_attention_heads": 2, "joint_attention_dim": 4096,
            "caption_projection_dim": 128, "pooled_projection_dim": 2048, "out_channels": 16,
            "pos_embed_max_size": 64}


def sd3_vae_config() -> dict[str, Any]:
    return {**sd15_vae_config(), "latent_channels": 16, "sample_size": 1024, "scaling_factor": VAE_SCALE,
            "shift_factor": VAE_SHIFT, "use_quant_conv": False, "use_post_quant_conv": False}


def clip_l_config() -> dict[str, Any]:
    return sd15_text_encoder_config()  # with its projection (CLIPTextModelWithProjection), as SD3 has it


@dataclass(frozen=True)
class UltraEditModels:
    root: Path
    freeform_dir: Path  # 32 channels, diffusers folder
    mask_dir: Path  # 48 channels, diffusers folder
    mask_checkpoint: Path  # single file

    def diffusers_dir(self, mask: bool) -> Path:
        return self.mask_dir if mask else self.freeform_dir


def sd3_family_version() -> str:
    digest = hashlib.sha256()
    for module in (__file__, sdxl_model_factory.__file__, mmdit_layout.__file__):
        digest.update(Path(module).read_bytes())
    return f"sd3-{digest.hexdigest()[:12]}"


def build_ultraedit_models(cache_root: Path = DEFAULT_CACHE_ROOT) -> UltraEditModels:
    """Both models in both layouts, built once (in a temporary folder renamed into place) and cached."""
    models = _describe(Path(cache_root).resolve() / sd3_family_version() / NAME)
    build_once(models.root, lambda tmp: _build_into(_describe(tmp)), lambda root: _is_complete(_describe(root)))
    return models


def _describe(root: Path) -> UltraEditModels:
    return UltraEditModels(root=root, freeform_dir=root / "freeform", mask_dir=root / "mask",
                           mask_checkpoint=root / "ultraedit_mask.safetensors")


def _is_complete(models: UltraEditModels) -> bool:
    return all(path.is_file() for path in (models.mask_checkpoint,
                                           models.freeform_dir / "model_index.json",
                                           models.mask_dir / "model_index.json"))


def ultraedit_transformer(in_channels: int):
    """The test transformer: the 48-channel weights, or their first 32 input channels."""
    from diffusers import SD3Transformer2DModel

    with torch.no_grad():
        model = SD3Transformer2DModel(**transformer_config(MASK_CHANNELS)).eval()
        randomise_(model, TRANSFORMER_SEED)
        if in_channels == MASK_CHANNELS:
            return model
        narrow = SD3Transformer2DModel(**transformer_config(in_channels)).eval()
        state = model.state_dict()
        state[mmdit_layout.DIFFUSERS_PATCH_KEY] = state[mmdit_layout.DIFFUSERS_PATCH_KEY][:, :in_channels].clone()
        narrow.load_state_dict(state)
        return narrow


def _build_into(models: UltraEditModels) -> None:
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        StableDiffusion3Pipeline,
    )
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    with torch.no_grad():
        vae = AutoencoderKL(**sd3_vae_config()).eval()
        clip_l = CLIPTextModelWithProjection(CLIPTextConfig(**clip_l_config())).eval()
        clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**clip_g_config())).eval()
        for module, seed in ((vae, SD3_VAE_SEED), (clip_l, CLIP_L_SEED), (clip_g, CLIP_G_SEED)):
            randomise_(module, seed)
        for encoder, random_layers in ((clip_l, CLIP_L_RANDOM_LAYERS), (clip_g, CLIP_G_RANDOM_LAYERS)):
            zero_text_tower_but_(encoder, random_layers)
            encoder.text_model.embeddings.token_embedding.weight[TOKEN_ROWS:-2].zero_()
        for block in (*vae.encoder.down_blocks, *vae.decoder.up_blocks, vae.encoder.mid_block, vae.decoder.mid_block):
            for resnet in block.resnets:
                zero_parts_(resnet, ("conv1", "conv2"))
    vocab = comfy_tokenizer_dir()
    tokenizers = [CLIPTokenizer(vocab_file=str(vocab / "vocab.json"), merges_file=str(vocab / "merges.txt"),
                                model_max_length=77, **extra) for extra in ({}, {"pad_token": "!"})]
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    for module in (vae, clip_l, clip_g):
        module.to(torch.float16)

    transformer = ultraedit_transformer(MASK_CHANNELS).to(torch.float16)
    StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=clip_l, tokenizer=tokenizers[0],
        text_encoder_2=clip_g, tokenizer_2=tokenizers[1], text_encoder_3=None, tokenizer_3=None,
    ).save_pretrained(models.mask_dir, safe_serialization=True)
    dig_holes_in(models.mask_dir)
    index = json.loads((models.mask_dir / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusion3InstructPix2PixPipeline"  # as UltraEdit's folders name it
    (models.mask_dir / "model_index.json").write_text(json.dumps(index, indent=2))
    # The free-form folder: the mask folder's files, hard-linked (one copy on disk), but its transformer.
    shutil.copytree(models.mask_dir, models.freeform_dir, copy_function=os.link)
    shutil.rmtree(models.freeform_dir / "transformer")
    ultraedit_transformer(FREE_FORM_CHANNELS).to(torch.float16).save_pretrained(
        models.freeform_dir / "transformer", safe_serialization=True)

    state = {UNET_PREFIX + k: v for k, v in mmdit_layout.diffusers_sd3_to_mmdit(transformer.state_dict()).items()}
    state.update(vae_to_ldm(vae.state_dict(), sd3_vae_config()))
    state.update({"text_encoders.clip_l.transformer." + k: v for k, v in clip_l.state_dict().items()})
    state.update({"text_encoders.clip_g.transformer." + k: v for k, v in clip_g.state_dict().items()})
    state = {k: v.contiguous() for k, v in state.items() if not k.endswith("position_ids")}
    save_file(state, str(models.mask_checkpoint), metadata={"format": "pt", "ip2p_test_factory": sd3_family_version()})
    dig_holes(models.mask_checkpoint)


