"""UltraEdit's edit as its authors' pipeline computes it, on diffusers' models: the parity reference.

Written from `StableDiffusion3InstructPix2PixPipeline.__call__` of HaozheZhao/UltraEdit (their
diffusers fork), step by step, with diffusers' own SD3Transformer2DModel, AutoencoderKL and
FlowMatchEulerDiscreteScheduler loaded from a diffusers folder:
- the image and the mask image (RGB, white = edit) encoded to the VAE posterior's mode, neither
  scaled nor shifted (their pipeline's normalisation is commented out);
- three branches per step, [prompt, negative, negative] x [image, image, zeros] (x [mask, mask,
  zeros] for the 48-channel model), concatenated after the noisy latent in that order;
- `uncond + text_cfg * (text - image) + image_cfg * (image - uncond)` on the transformer's output;
- the scheduler's Euler steps at its `set_timesteps(steps)`, from the given noise as the first latent;
- the result divided by the VAE's scaling factor (no shift added) before decoding.

The text embeddings are given (their pipeline takes `prompt_embeds` and `pooled_prompt_embeds`
too): the parity tests pass the ones ComfyUI's text encoders made, so what is compared is the
pack's part of the edit. Returns the final latent in ComfyUI's LATENT convention (unscaled).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch


@dataclass(frozen=True)
class TextEmbeddings:
    prompt: torch.Tensor  # (1, tokens, 4096)
    pooled: torch.Tensor  # (1, 2048)
    negative: torch.Tensor
    negative_pooled: torch.Tensor


def load_parts(folder: Path):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    folder = Path(folder)
    return (SD3Transformer2DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32).eval(),
            AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval(),
            FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"))


@torch.no_grad()
def ultraedit_latent(folder: Path, image: torch.Tensor, mask: Optional[torch.Tensor], text: TextEmbeddings,
                     noise: torch.Tensor, steps: int, text_cfg: float, image_cfg: float) -> torch.Tensor:
    """`image` (1, 3, H, W) in [-1, 1]; `mask` (1, 3, H, W) in [-1, 1] for the mask model (None: free-form)."""
    return denoise(*load_parts(folder), image, mask, text, noise, steps, text_cfg, image_cfg)


@torch.no_grad()
def denoise(transformer, vae, scheduler, image: torch.Tensor, mask: Optional[torch.Tensor], text: TextEmbeddings,
            noise: torch.Tensor, steps: int, text_cfg: float, image_cfg: float,
            timing: Optional[dict] = None) -> torch.Tensor:
    """The edit's latent from loaded parts; `timing`, if given, gets the loop's "seconds"."""
    image_latents = vae.encode(image).latent_dist.mode()
    image_latents = torch.cat([image_latents, image_latents, torch.zeros_like(image_latents)])
    mask_latents = None
    if mask is not None:
        mask_latents = vae.encode(mask).latent_dist.mode()
        mask_latents = torch.cat([mask_latents, mask_latents, torch.zeros_like(mask_latents)])
    prompt_embeds = torch.cat([text.prompt, text.negative, text.negative])
    pooled = torch.cat([text.pooled, text.negative_pooled, text.negative_pooled])
    started = time.perf_counter()
    scheduler.set_timesteps(steps)
    latents = noise.clone()
    for t in scheduler.timesteps:
        model_input = torch.cat([torch.cat([latents] * 3), image_latents], dim=1)
        if mask_latents is not None:
            model_input = torch.cat([model_input, mask_latents], dim=1)
        prediction = transformer(hidden_states=model_input, timestep=t.expand(3), encoder_hidden_states=prompt_embeds,
                                 pooled_projections=pooled, return_dict=False)[0]
        text_branch, image_branch, uncond = prediction.chunk(3)
        guided = uncond + text_cfg * (text_branch - image_branch) + image_cfg * (image_branch - uncond)
        latents = scheduler.step(guided, t, latents, return_dict=False)[0]
    if timing is not None:
        timing["seconds"] = time.perf_counter() - started
    return latents / vae.config.scaling_factor
