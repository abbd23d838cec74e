"""diffusers' InstructPix2Pix pipeline set to sample as ComfyUI does, so their edits compare number for number.

ComfyUI's "simple" scheduler puts the steps on the training timesteps 999, 999 - 1000/n, ...;
diffusers' Euler with "trailing" spacing samples at the same sigmas. ComfyUI draws its initial
noise as randn(shape) from manual_seed(seed) and starts at noise * sqrt(1 + sigma_max^2) at full
denoise, while diffusers multiplies the latents it is given by init_noise_sigma: `start_latents`
makes the first noisy latent the same in both. Used by the parity tests (`tests/reference.py`),
the benchmark's diffusers worker and the demo model's quality benchmark.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ip2p_core.formats.latents import Family

# SD1.5's VAE scale: diffusers returns scaled latents, ComfyUI's LATENT holds them unscaled.
SD15_LATENT_SCALE = Family.SD15.value.scaling_factor


def comfy_pipeline(diffusers_dir: Path | str):
    """`StableDiffusionInstructPix2PixPipeline` from a folder, in fp32, sampling at ComfyUI's sigmas."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    return like_comfy(StableDiffusionInstructPix2PixPipeline.from_pretrained(
        diffusers_dir, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32))


def like_comfy(pipe):
    """`pipe` with Euler at the sigmas of ComfyUI's "simple" scheduler, and no progress bar."""
    from diffusers import EulerDiscreteScheduler

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def comfy_noise(shape, seed: int) -> torch.Tensor:
    """The initial noise ComfyUI draws for a seed (comfy.sample.prepare_noise)."""
    return torch.randn(shape, generator=torch.manual_seed(seed), dtype=torch.float32)


def start_latents(pipe, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """`noise` scaled so that the pipeline's first noisy latent is ComfyUI's at full denoise."""
    pipe.scheduler.set_timesteps(steps)
    sigma = float(pipe.scheduler.sigmas[0])
    return noise * ((1 + sigma ** 2) ** 0.5 / float(pipe.scheduler.init_noise_sigma))
