"""Does a trained model edit? Pixel error of its edits against known targets, beside two baselines.

On held-out pairs whose target is known exactly (`synthetic_shapes`), an edit's error is
compared with (a) returning the input unchanged, which is already right outside the edited
shape, and (b) the same model before training, and set against the VAE's own reconstruction
error of the targets, which no edit decoded by that VAE can go below; a sweep over text and image CFG shows how
the two guidance terms, learnt through conditioning dropout, move that error. Sampling goes
through diffusers' InstructPix2Pix pipeline, the reference the pack matches numerically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .paired_data import Pair, image_to_tensor, load_pair
from .trainable_model import TrainableModel, ip2p_pipeline


@dataclass(frozen=True)
class EditScore:
    text_cfg: float
    image_cfg: float
    mse: float  # mean squared error against the target, pixel values in [0, 1]


def identity_mse(pairs: list[Pair]) -> float:
    """The error of returning each input unchanged."""
    return float(np.mean([_mse(*load_pair(pair)) for pair in pairs]))


def reconstruction_mse(model: TrainableModel, pairs: list[Pair]) -> float:
    """The error of the targets passed through the VAE: the floor any edit decoded by it stands on."""
    targets = [load_pair(pair)[1] for pair in pairs]
    pixels = torch.stack([image_to_tensor(target) for target in targets])
    with torch.no_grad():
        decoded = model.vae.decode(model.vae.encode(pixels).latent_dist.mode()).sample
    images = ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return float(np.mean([_mse(Image.fromarray(image), target) for image, target in zip(images, targets)]))


def edit_scores(model: TrainableModel, pairs: list[Pair], guidance: list[tuple[float, float]], steps: int = 20,
                seed: int = 0, chunk: int = 64) -> list[EditScore]:
    """Mean error of the model's edits for each (text_cfg, image_cfg); the same seeds for every setting."""
    model.unet.eval()
    pipe = ip2p_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    loaded = [load_pair(pair) for pair in pairs]
    scores = []
    for text_cfg, image_cfg in guidance:
        errors = []
        for start in range(0, len(pairs), chunk):
            part = slice(start, start + chunk)
            with torch.no_grad():
                edits = pipe(prompt=[p.instruction for p in pairs[part]], image=[o for o, _ in loaded[part]],
                             num_inference_steps=steps, guidance_scale=text_cfg, image_guidance_scale=image_cfg,
                             generator=torch.Generator().manual_seed(seed + start), output_type="pil").images
            errors += [_mse(edit, target) for edit, (_, target) in zip(edits, loaded[part])]
        scores.append(EditScore(text_cfg, image_cfg, float(np.mean(errors))))
    return scores


def _mse(a: Image.Image, b: Image.Image) -> float:
    if a.size != b.size:
        a = a.resize(b.size, Image.Resampling.BICUBIC)
    x = np.asarray(a.convert("RGB"), dtype=np.float64) / 255.0
    y = np.asarray(b.convert("RGB"), dtype=np.float64) / 255.0
    return float(((x - y) ** 2).mean())
