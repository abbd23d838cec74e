"""A small SD-style model that the IP2P recipe can be proven on with a CPU in minutes.

Real SD weights are neither available offline nor trainable on a CPU, so the proof starts
from a miniature SD1.x: a VAE with 4x downsampling taught to reconstruct the images of the
task (like SD's VAE, it is then frozen), a two-layer CLIP text tower left at its random
initialisation (frozen: distinct instructions still give distinct embeddings), and a
two-level UNet with 4 input channels, which the training run widens to 8. Saved as an SD
diffusers folder, it goes through `python -m training.train` like any SD model.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from training.trainable_model import SD15_NOISE_SCHEDULE

UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "attention_head_dim": 4,
    "norm_num_groups": 8,
}
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 32,
}
TEXT_ENCODER_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 64,
    "intermediate_size": 128,
    "projection_dim": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}
log = logging.getLogger(__name__)

KL_WEIGHT = 1e-6  # SD's VAE: reconstruction first, a KL term only to keep the latent bounded


def make_small_sd(out: Path, images: Tensor, tokenizer_dir: Path, vae_steps: int = 1500, seed: int = 0) -> Path:
    """Builds the small SD model, its VAE fitted to `images` ((N, 3, H, W) in [-1, 1]); saves it to `out`."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    fit_autoencoder(vae, images, vae_steps, seed)
    with torch.no_grad():
        latents = vae.encode(images[:512]).latent_dist.mode()
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    pipe = StableDiffusionPipeline(
        vae=vae.eval(), text_encoder=CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER_CONFIG)).eval(),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_dir)), unet=UNet2DConditionModel(**UNET_CONFIG),
        scheduler=DDPMScheduler(**SD15_NOISE_SCHEDULE), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


def fit_autoencoder(vae, images: Tensor, steps: int, seed: int, batch_size: int = 32, lr: float = 2e-3) -> float:
    """Trains the VAE to reconstruct `images`; returns the last reconstruction MSE (in [-1, 1] units)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    vae.train()
    reconstruction = torch.tensor(float("nan"))
    for step in range(steps):
        batch = images[torch.randint(len(images), (batch_size,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        reconstruction = torch.nn.functional.mse_loss(vae.decode(posterior.sample(generator)).sample, batch)
        loss = reconstruction + KL_WEIGHT * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            log.info("autoencoder step %d/%d: reconstruction MSE %.5f", step + 1, steps, reconstruction.item())
    vae.eval()
    return float(reconstruction.detach())
