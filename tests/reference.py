"""Reference edits computed outside ComfyUI with diffusers on the test model's weights.

Two references: diffusers' own `StableDiffusionInstructPix2PixPipeline`, and a literal Euler
loop over diffusers' UNet with the paper's formula written out, for scales the pipeline
cannot express (it silently drops guidance when image_guidance_scale < 1).
Latents are returned in ComfyUI's LATENT convention (divided by the VAE scaling factor).
"""
import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.diffusers_reference import SD15_LATENT_SCALE, comfy_noise, comfy_pipeline, start_latents


def relative_diff(a: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest difference, relative to the reference's largest value: how the parity bounds are stated."""
    assert a.shape == reference.shape, (a.shape, reference.shape)
    return float((a - reference).abs().max() / reference.abs().max())


def vae_latent(vae, pixels: torch.Tensor) -> torch.Tensor:
    """The image latent diffusers' IP2P pipeline conditions on: the posterior's mode (AutoencoderKL)
    or the encoder's output (AutoencoderTiny, the demo model's TAESD)."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_instruct_pix2pix import retrieve_latents

    return retrieve_latents(vae.encode(pixels), sample_mode="argmax")


# One pipeline per folder for the whole session: loading it is most of a reference's cost.
pipeline = functools.lru_cache(maxsize=2)(comfy_pipeline)


def pipeline_latent(diffusers_dir: Path, image: Path, prompt: str, seed: int, steps: int,
                    text_cfg: float, image_cfg: float) -> torch.Tensor:
    pipe = pipeline(diffusers_dir)
    picture = Image.open(image).convert("RGB")
    noise = comfy_noise((1, 4, picture.height // 8, picture.width // 8), seed)
    with torch.no_grad():
        out = pipe(prompt, image=picture, num_inference_steps=steps, guidance_scale=text_cfg,
                   image_guidance_scale=image_cfg, latents=start_latents(pipe, noise, steps), output_type="latent")
    return out.images / SD15_LATENT_SCALE


def formula_latent(diffusers_dir: Path, image: Path, prompt: str, seed: int, steps: int,
                   text_cfg, image_cfg, rescale: float = 0.0) -> torch.Tensor:
    """Euler with `uncond + image_cfg*(image - uncond) + text_cfg*(full - image)` spelled out.

    A scale may be a list with one value per step; `rescale` is diffusers' guidance_rescale
    (std of the guided eps brought back to the full prediction's, blended by `rescale`).
    """
    text_cfgs = text_cfg if isinstance(text_cfg, list) else [text_cfg] * steps
    image_cfgs = image_cfg if isinstance(image_cfg, list) else [image_cfg] * steps
    pipe = pipeline(diffusers_dir)
    picture = Image.open(image).convert("RGB")
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        image_latent = vae_latent(pipe.vae, pixels)
        texts = pipe.tokenizer([prompt, ""], padding="max_length", max_length=77, return_tensors="pt").input_ids
        text, empty = pipe.text_encoder(texts)[0].chunk(2)
        scheduler = pipe.scheduler
        x = start_latents(pipe, comfy_noise(image_latent.shape, seed), steps) * scheduler.init_noise_sigma
        for t, text_cfg, image_cfg in zip(scheduler.timesteps, text_cfgs, image_cfgs):
            scaled = scheduler.scale_model_input(x, t)
            batch = torch.cat([scaled] * 3)
            images = torch.cat([image_latent, image_latent, torch.zeros_like(image_latent)])
            full, with_image, uncond = pipe.unet(torch.cat([batch, images], 1), t,
                                                 encoder_hidden_states=torch.cat([text, empty, empty])).sample.chunk(3)
            eps = uncond + image_cfg * (with_image - uncond) + text_cfg * (full - with_image)
            if rescale:
                rescaled = eps * full.std(dim=(1, 2, 3), keepdim=True) / eps.std(dim=(1, 2, 3), keepdim=True)
                eps = rescale * rescaled + (1 - rescale) * eps
            x = scheduler.step(eps, t, x).prev_sample
    return x / SD15_LATENT_SCALE
