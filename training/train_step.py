"""One IP2P training loss: denoise the edited image's latent, given the original's and the instruction.

The edited image's latent is noised at a random timestep; the UNet sees it with the
original image's latent concatenated (SD1.x convention: distribution mode, unscaled) and
the instruction's embedding, each dropped now and then (`conditioning_dropout`), and is
trained to predict the noise (or the velocity, for v-prediction schedules).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ip2p_core.formats.latents import Family

from .conditioning_dropout import apply_dropout, dropout_masks
from .paired_data import Pair, PairTransform, load_pair
from .trainable_model import TrainableModel, latent_from_moments, vae_latent_scale, vae_moments
from .unet_input import concat_image_latent, image_latent_for


@dataclass(frozen=True)
class Batch:
    original: Tensor  # (B, 3, H, W) in [-1, 1]
    edited: Tensor
    instructions: list[str]


def sample_batch(pairs: list[Pair], transform: PairTransform, size: int, generator: torch.Generator) -> Batch:
    """`size` pairs drawn with replacement, each transformed with the same crop/flip for both images."""
    originals, edits, instructions = [], [], []
    for index in torch.randint(len(pairs), (size,), generator=generator).tolist():
        original, edited = transform(*load_pair(pairs[index]), generator)
        originals.append(original)
        edits.append(edited)
        instructions.append(pairs[index].instruction)
    return Batch(torch.stack(originals), torch.stack(edits), instructions)


class FrozenEncoders:
    """The frozen text encoder's embeddings and VAE's outputs a batch needs.

    With `cache`, each instruction and each (transformed) image is encoded once, alone, and
    kept: for data sets drawn many times over, such as the synthetic demo pairs, that is most
    of a step's work saved (on a CPU the demo's images cost as much to encode as the UNet's
    step). Encoding each alone makes a cached value bit for bit what a resumed run computes
    again; `save` keeps the cache for that run, so it need not. Without `cache`, every batch
    is encoded as a whole.
    """

    def __init__(self, model: TrainableModel, cache: bool = False):
        self.model, self.cache = model, cache
        self._text: dict[str, Tensor] = {}
        self._moments: dict[bytes, Tensor] = {}

    def save(self, path: Path) -> None:
        """Writes the cache, tagged with the frozen encoders' weights it holds values of."""
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"encoders": self._fingerprint, "text": self._text,
                    "moments": {key.hex(): value for key, value in self._moments.items()}}, tmp)
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        """Takes a saved cache if its encoders are these; False (and nothing taken) otherwise."""
        saved = torch.load(path, map_location=self.model.vae.device, weights_only=True)
        if saved["encoders"] != self._fingerprint:
            return False
        self._text.update(saved["text"])
        self._moments.update({bytes.fromhex(key): value for key, value in saved["moments"].items()})
        return True

    @cached_property
    def _fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for module in (self.model.vae, self.model.text_encoder):
            for name, tensor in module.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def text(self, prompts: list[str]) -> Tensor:
        if not self.cache:
            return encode_text(self.model, prompts)
        for prompt in set(prompts) - self._text.keys():
            self._text[prompt] = encode_text(self.model, [prompt])
        return torch.cat([self._text[prompt] for prompt in prompts])

    def moments(self, pixels: Tensor) -> Tensor:
        vae = self.model.vae
        pixels = pixels.to(vae.device)
        if not self.cache:
            return vae_moments(vae, pixels)
        keys = [hashlib.blake2b(image.cpu().numpy().tobytes(), digest_size=16).digest() for image in pixels]
        for key, image in zip(keys, pixels):
            if key not in self._moments:
                self._moments[key] = vae_moments(vae, image[None])
        return torch.cat([self._moments[key] for key in keys])


@torch.no_grad()
def encode_text(model: TrainableModel, prompts: list[str]) -> Tensor:
    tokenizer = model.tokenizer
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return model.text_encoder(ids.to(model.text_encoder.device))[0]


def ip2p_loss(encoders: FrozenEncoders, batch: Batch, empty_text: Tensor, dropout: float,
              generator: torch.Generator, changed_weight: float = 1.0) -> Tensor:
    """The mean squared error of the UNet's prediction for one batch; all randomness from `generator`.

    `changed_weight` counts the error where the edit changes the latent (`changed_cells`) that many
    times: a local edit changes about a fifth of the latent's cells, so in a plain mean the decision *which*
    shape to change weighs a tenth of what a whole-picture edit's colour does.
    """
    model = encoders.model
    device = model.unet.device
    scheduler = model.noise_scheduler
    with torch.no_grad():
        edited_moments = encoders.moments(batch.edited)
        scale = vae_latent_scale(model.vae)
        latents = latent_from_moments(model.vae, edited_moments, generator) * scale
        original = latent_from_moments(model.vae, encoders.moments(batch.original))
        image_latents = image_latent_for(Family.SD15, original)
        text = encoders.text(batch.instructions)
    size = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = torch.randint(scheduler.config.num_train_timesteps, (size,), generator=generator).to(device)
    masks = dropout_masks(torch.rand(size, generator=generator).to(device), dropout)
    text, image_latents = apply_dropout(text, empty_text, image_latents, masks)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, timesteps)
    sample = concat_image_latent(noisy, image_latents).contiguous(memory_format=torch.channels_last)
    prediction = model.unet(sample, timesteps, text).sample
    if changed_weight == 1.0:
        return F.mse_loss(prediction.float(), target.float())
    # the mask compares the two images' modes, not a posterior sample
    weights = 1.0 + (changed_weight - 1.0) * changed_cells(latent_from_moments(model.vae, edited_moments) * scale,
                                                           original * scale)
    return (weights * (prediction.float() - target.float()) ** 2).mean()


CHANGED_CELL = 0.1  # a cell of the scaled latent (the space the UNet denoises) that moves this much is changed


@torch.no_grad()
def changed_cells(edited: Tensor, original: Tensor) -> Tensor:
    """Where two scaled latents (B, C, h, w) differ, as a (B, 1, h, w) float mask of 0 and 1."""
    return ((edited - original).abs().amax(dim=1, keepdim=True) > CHANGED_CELL).float()
