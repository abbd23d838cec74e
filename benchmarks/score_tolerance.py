"""How far a perfect edit lands from its target after the demo model's VAE, and how far a wrong one does:
the basis of `training.evaluate_edits.COLLATERAL_TOLERANCE`.

Every edit the pack makes goes through the VAE, so even a perfect one comes back with rounding:
each drawn target is encoded and decoded by the demo model's own VAE (its TAESD-format encoder
and decoder, through diffusers) and scored. The regions the instruction does not name are
measured one by one (`unnamed_regions`): the largest region MSE of a perfect edit is what the
tolerance must clear. Against it, two failures a user would name: another shape of the scene
recoloured as well, and the named change painted over the whole picture, each through the VAE
too. Chosen on the validation pairs; nothing here looks at the test pairs.

    python -m benchmarks.score_tolerance --pairs 300
"""
from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from ip2p_core import demo_model
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.evaluate_edits import COLLATERAL_TOLERANCE, score
from training.paired_data import image_to_tensor
from training.synthetic_shapes import COLORS, EDIT_KINDS, EditPair, evaluation_pairs
from training.trainable_model import comfy_tokenizer_dir, latent_from_moments, load_model, vae_decode, vae_moments

from . import report_cli

SPLIT = "validation"


def through_vae(vae, images: list[Image.Image]) -> list[Image.Image]:
    """`images` encoded and decoded by `vae`, as 8-bit pictures (what a saved edit is)."""
    pixels = torch.stack([image_to_tensor(image) for image in images])
    with torch.no_grad():
        decoded = vae_decode(vae, latent_from_moments(vae, vae_moments(vae, pixels)))
    values = ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(v) for v in values]


def another_shape_recoloured(pair: EditPair, rng: random.Random) -> Image.Image | None:
    """The target with one shape the instruction does not name turned another colour (None: no such shape)."""
    others = [i for i, s in enumerate(pair.after.shapes) if s.kind != pair.edit.shape]
    if not others or pair.edit.kind == "night":
        return None
    index = rng.choice(others)
    shape = pair.after.shapes[index]
    color = rng.choice([c for c in COLORS if c not in (shape.color, pair.after.background)])
    shapes = pair.after.shapes[:index] + (replace(shape, color=color),) + pair.after.shapes[index + 1:]
    return replace(pair.after, shapes=shapes).draw(pair.original.size[0])


def whole_picture_painted(pair: EditPair) -> Image.Image | None:
    """The named colour over everything: what an edit that 'recolours' the whole picture returns."""
    if not pair.edit.color or pair.edit.kind == "background":
        return None
    return Image.new("RGB", pair.original.size, COLORS[pair.edit.color])


def run(args) -> dict:
    pairs = evaluation_pairs(SPLIT, args.pairs, demo_model.IMAGE_SIZE)
    vae = load_model(checkpoint_file(CACHE), comfy_tokenizer_dir()).vae.eval()
    rng = random.Random(0)
    perfect = [score(p, r) for p, r in zip(pairs, through_vae(vae, [p.edited for p in pairs]))]
    wrong = {"another shape recoloured": [(p, another_shape_recoloured(p, rng)) for p in pairs],
             "whole picture painted": [(p, whole_picture_painted(p)) for p in pairs]}
    failures = {}
    for name, made in wrong.items():
        made = [(p, image) for p, image in made if image is not None]
        failures[name] = [score(p, r) for (p, _), r in zip(made, through_vae(vae, [image for _, image in made]))]
    rows = []
    for kind in (*EDIT_KINDS, "all"):
        mine = [s for s in perfect if kind in ("all", s.kind)]
        worst = [s.worst_unnamed_mse for s in mine]
        row = {"kind": kind, "pairs": len(mine), "perfect_max": max(worst),
               "perfect_p99": float(np.percentile(worst, 99)),
               "perfect_named_change": float(np.mean([s.named_change for s in mine])),
               "perfect_success": float(np.mean([s.success for s in mine]))}
        for name, scores in failures.items():
            theirs = [s for s in scores if kind in ("all", s.kind)]
            row[name] = (min(s.worst_unnamed_mse for s in theirs), float(np.mean([s.success for s in theirs])),
                         len(theirs)) if theirs else None
        rows.append(row)
    return {"split": SPLIT, "pairs": len(pairs), "tolerance": COLLATERAL_TOLERANCE, "rows": rows}


def markdown(report: dict, command: str) -> str:
    failures = [k for k in report["rows"][0] if k.startswith(("another", "whole"))]
    head = ("| edit kind | pairs | perfect edit through the VAE: largest unnamed-region MSE | its 99th percentile "
            "| its strict success | "
            + " | ".join(f"{name}: smallest largest-region MSE (success)" for name in failures) + " |")
    lines = [f"Command: `{command}`; {report['pairs']} {report['split']} pairs; tolerance "
             f"{report['tolerance']}; {report['machine']}.", "", head, "|" + "---|" * (5 + len(failures))]
    for row in report["rows"]:
        cells = [f"{row[name][0]:.4f} ({100 * row[name][1]:.0f} % of {row[name][2]})" if row[name] else "-"
                 for name in failures]
        lines.append(f"| {row['kind']} | {row['pairs']} | {row['perfect_max']:.5f} | {row['perfect_p99']:.5f} | "
                     f"{100 * row['perfect_success']:.0f} % | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--pairs", type=int, default=300, help="validation pairs to measure on")


if __name__ == "__main__":
    report_cli.main("score_tolerance", __doc__, options, run, markdown)
