"""How to scale the relevance map: the authors' way or the pack's, on the demo model's validation pairs.

    python -m benchmarks.relevance_normalisation

"Watch Your Steps"' code clips the channel-summed prediction difference above Q3 + 1.5 IQR and
scales it from its smallest to its largest value; IP2P Relevance Mask divides it by its largest
value (ip2p_core/inference/relevance.py). Both are applied here to the same differences, taken
with diffusers' UNet on the demo model (the pack's predictions within rounding: RESULTS.md, "The
demo model on the test pairs") at each noise level, averaged over 4 draws (and the first draw
alone), then thresholded and grown by the node's function for each (threshold, margin) of
relevance_quality's grid: the best mask's IoU against the true changed region, per edit kind.
"""
from __future__ import annotations

import itertools
import logging

import numpy as np
import torch

from ip2p_core import demo_model
from ip2p_core.inference.relevance import relevance_map, to_pixels
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.synthetic_shapes import evaluation_pairs

from . import report_cli
from .demo_quality import diffusers_pipeline
from .relevance_quality import MAP_GRID, MASK_GRID, iou_by_kind, true_regions

log = logging.getLogger("relevance_normalisation")
DRAWS = max(MAP_GRID["draws"])


def authors_scaling(difference: torch.Tensor) -> torch.Tensor:
    """The authors' code: clipped above Q3 + 1.5 IQR, then scaled from its minimum to its maximum."""
    values = difference.flatten().double()
    q1, q3 = torch.quantile(values, torch.tensor([0.25, 0.75], dtype=values.dtype), interpolation="midpoint")
    clipped = difference.double().clamp(max=float(q3 + 1.5 * (q3 - q1)))
    span = clipped.max() - clipped.min()
    return ((clipped - clipped.min()) / span if span > 0 else torch.zeros_like(clipped)).float()


SCALINGS = {"the authors' (clip above Q3 + 1.5 IQR, min to max)": lambda d: authors_scaling(d[0][0])[None],
            "the pack's (divided by the largest)": relevance_map}


@torch.no_grad()
def differences(pipe, pairs, noise_level: float) -> list[torch.Tensor]:
    """Per pair, (DRAWS, h, w): |eps(instruction, image) - eps("", image)| summed over channels."""
    from diffusers import DDPMScheduler

    from training.trainable_model import latent_from_moments, vae_latent_scale, vae_moments

    noising = DDPMScheduler.from_config(pipe.scheduler.config)
    timestep = torch.tensor([round(noise_level * noising.config.num_train_timesteps) - 1])
    out = []
    for index, pair in enumerate(pairs):
        pixels = torch.from_numpy(np.asarray(pair.original, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1.0
        latent = latent_from_moments(pipe.vae, vae_moments(pipe.vae, pixels))
        tokens = pipe.tokenizer([pair.instruction, ""], padding="max_length", truncation=True,
                                max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
        text = pipe.text_encoder(tokens)[0]
        generator = torch.Generator().manual_seed(index)
        draws = []
        for _ in range(DRAWS):
            noise = torch.randn(latent.shape, generator=generator)
            noisy = noising.add_noise(latent * vae_latent_scale(pipe.vae), noise, timestep)
            eps = pipe.unet(torch.cat([noisy.repeat(2, 1, 1, 1), latent.repeat(2, 1, 1, 1)], dim=1), timestep,
                            encoder_hidden_states=text).sample
            draws.append((eps[0] - eps[1]).abs().sum(dim=0))
        out.append(torch.stack(draws))
    return out


def run(args) -> dict:
    pairs = evaluation_pairs("validation", args.pairs, demo_model.IMAGE_SIZE)
    pipe = diffusers_pipeline(checkpoint_file(CACHE))
    rows, truths = [], true_regions(pairs)
    for noise_level in MAP_GRID["noise_level"]:
        raw = differences(pipe, pairs, noise_level)
        for draws, (name, scale) in itertools.product(MAP_GRID["draws"], SCALINGS.items()):
            maps = [to_pixels(scale([d[:draws].mean(dim=0, keepdim=True)]), pairs[0].original.size[::-1])[0]
                    for d in raw]
            best = max((iou_by_kind(pairs, truths, maps, threshold, margin) | {"threshold": threshold, "margin": margin}
                        for threshold, margin in itertools.product(*MASK_GRID.values())),
                       key=lambda row: row["overall"])
            rows.append({"scaling": name, "noise_level": noise_level, "draws": draws, **best})
            log.info("%s", rows[-1])
    return {"pairs": len(pairs), "rows": rows}


def markdown(report: dict, command: str) -> str:
    kinds = [k for k in report["rows"][0] if k not in ("scaling", "noise_level", "draws", "threshold", "margin")]
    lines = [f"Command: `{command}`; the first {report['pairs']} validation pairs; {report['machine']}; "
             f"{report['total_seconds'] / 60:.0f} min in all. Per scaling, noise level and draws: the best "
             "(threshold, margin) by overall IoU (the mean over kinds) and its IoU per kind.", "",
             "| scaling | noise level | draws | best threshold, margin | " + " | ".join(kinds) + " |",
             "|---|---|---|---|" + "---|" * len(kinds)]
    for row in report["rows"]:
        lines.append(f"| {row['scaling']} | {row['noise_level']} | {row['draws']} | {row['threshold']}, "
                     f"{row['margin']} | " + " | ".join(f"{row[k]:.2f}" for k in kinds) + " |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--pairs", type=int, default=120)


if __name__ == "__main__":
    report_cli.main("relevance_normalisation", __doc__, options, run, markdown)
