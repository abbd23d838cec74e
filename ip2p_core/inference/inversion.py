"""Inversion: the noise from which the sampler would paint the input image back.

Running the deterministic sampler backwards (DDIM inversion, Euler steps over the schedule's
noise levels in rising order) from the input's own latent gives the noisy latent of the first
step; an edit that starts there instead of at random noise keeps what the instruction does not
touch. The inverted noise belongs to one schedule and one picture size: used with another, or
with a sampler that adds fresh noise at every step, it would silently be just noise.
"""
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import IP2PUserError

# The lowest noise level the inversion starts at, in place of the schedule's final 0 (at which
# the model cannot be evaluated): ComfyUI's FlipSigmas uses the same.
START_SIGMA = 1e-4
# Samplers that draw fresh noise at each step, by the words in their function names.
NOISE_ADDING = ("ancestral", "sde", "ddpm", "lcm", "seeds", "sa_solver", "restart")


@dataclass(frozen=True)
class Inversion:
    """What an inverted noise was made for: the sampler's schedule and the latent's shape."""
    sigmas: tuple[float, ...]
    shape: tuple[int, ...]  # channels, height, width


def rising_sigmas(sigmas: Tensor) -> Tensor:
    """The sampler's noise levels backwards, from START_SIGMA up to the first step's."""
    rising = sigmas.flip(0).clone()
    if rising[0] == 0:
        rising[0] = START_SIGMA
    return rising


def sampler_adds_noise(function_name: str) -> bool:
    return any(word in function_name.lower() for word in NOISE_ADDING)


def refuse_noise_adding(sampler_function_name: str) -> None:
    """Refuses a sampler that would throw an inverted noise away, naming deterministic ones."""
    if sampler_adds_noise(sampler_function_name):
        raise IP2PUserError(f"the sampler '{sampler_function_name.removeprefix('sample_')}' adds fresh noise at every "
                            "step, which undoes an inverted noise: use a deterministic sampler (euler, ddim, heun, "
                            "dpmpp_2m, ...) with IP2P Invert's noise")


def check_schedule(inversion: Inversion, sigmas: Tensor, sampler_function_name: str) -> None:
    """Refuses a sampler run the inverted noise was not made for, saying what to change."""
    refuse_noise_adding(sampler_function_name)
    ran = tuple(float(s) for s in sigmas)
    same = len(ran) == len(inversion.sigmas) and torch.allclose(
        torch.tensor(ran, dtype=torch.float64), torch.tensor(inversion.sigmas, dtype=torch.float64), rtol=1e-5)
    if not same:
        raise IP2PUserError(f"IP2P Invert made this noise for {_describe(inversion.sigmas)}, but the sampler runs "
                            f"{_describe(ran)}: give IP2P Invert the sampler's steps, scheduler and denoise")


def fit_batch(noise: Tensor, inversion: Inversion, latent_shape: tuple[int, ...]) -> Tensor:
    """The noise for a sampler latent of `latent_shape` (a view: copy it before use): as is, or one
    image's repeated for a batch of edits of it; another picture size is refused."""
    if tuple(latent_shape[1:]) != inversion.shape:
        raise IP2PUserError(f"IP2P Invert made this noise for a latent of {_size(inversion.shape)}, but the sampler's "
                            f"is {_size(tuple(latent_shape[1:]))}: invert the same image at the same size")
    if noise.shape[0] == latent_shape[0]:
        return noise
    if noise.shape[0] == 1:
        return noise.expand(latent_shape[0], *noise.shape[1:])
    raise IP2PUserError(f"IP2P Invert made {noise.shape[0]} noises, but the sampler makes {latent_shape[0]} edits: "
                        "invert one image, or the same images the sampler edits")


def _describe(sigmas: tuple[float, ...]) -> str:
    return f"{len(sigmas) - 1} steps (noise {sigmas[0]:.4g} to {sigmas[-1]:.4g})"


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[-1] * 8}x{shape[-2] * 8} px ({'x'.join(map(str, shape))})"
