"""Which demo model to ship: a training run's checkpoints scored on the validation pairs.

    python -m benchmarks.demo_validation --run .cache/demo_recipe/binding --start .cache/demo_recipe/first.safetensors
    python -m benchmarks.demo_validation --model .cache/demo_model/VERSION/ip2p_demo_shapes.safetensors
    python -m benchmarks.demo_validation --model FILE --kinds night --pairs 16 --text-cfg 3   # a closer look
    python -m benchmarks.demo_validation --model FILE --example-recolours   # the README picture's recolours

Checkpoints, presets and thresholds are chosen here, on the validation draw
(`synthetic_shapes.evaluation_pairs("validation")`), never on the test draw that
`benchmarks.demo_quality` reports. Each model (a run's checkpoints, their EMA weights, or a
single file) edits the pairs through diffusers' pipeline with Euler and with Euler ancestral, 20
steps, the paper's scales unless given: the same edits as the pack's to a pixel level for Euler
(benchmarks/RESULTS.md, "The demo model on the test pairs"); Euler ancestral's later noise is
diffusers' own, not ComfyUI's. Scored with the strict score, per kind.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import torch

from harness.diffusers_reference import like_comfy
from ip2p_core import demo_model
from training.evaluate_edits import score
from training.synthetic_shapes import (
    EDIT_KINDS,
    SHAPES,
    SPLIT_SEEDS,
    Edit,
    EditPair,
    edit_pair,
    evaluation_pairs,
    example_scene,
)
from training.train_checkpoints import CHECKPOINTS, EMA_FILE, PREFIX, STATE_FILE
from training.trainable_model import TrainableModel, comfy_tokenizer_dir, ip2p_pipeline, load_model

from . import report_cli
from .demo_quality import IMAGE_CFG, STEPS, TEXT_CFG, pipeline_edits, table

log = logging.getLogger("demo_validation")
SPLIT = "validation"
SAMPLERS = ("euler", "euler_ancestral")
EXAMPLE_COLOURS = ("red", "purple", "black")


def candidates(args) -> dict[str, Callable[[], TrainableModel]]:
    """Name -> its loader: the single file, or the start model with each checkpoint's EMA weights in its UNet."""
    if args.model:
        return {args.model.name: lambda: load_model(args.model, comfy_tokenizer_dir())}
    found = {}
    for checkpoint in sorted((args.run / CHECKPOINTS).glob(f"{PREFIX}*")):
        if json.loads((checkpoint / STATE_FILE).read_text())["ema"]:
            found[f"step {int(checkpoint.name[len(PREFIX):])} (EMA)"] = lambda c=checkpoint: _with_ema(args.start, c)
    return found


def _with_ema(start: Path, checkpoint: Path) -> TrainableModel:
    model = load_model(start, comfy_tokenizer_dir())
    shadow = torch.load(checkpoint / EMA_FILE, map_location="cpu", weights_only=True)["shadow_params"]
    with torch.no_grad():
        for param, value in zip(model.unet.parameters(), shadow):
            param.copy_(value)
    return model


def sampled(pipe, sampler: str):
    from diffusers import EulerAncestralDiscreteScheduler

    pipe = like_comfy(pipe)
    if sampler == "euler_ancestral":
        pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    return pipe


def chosen_pairs(args) -> list[EditPair]:
    """The first --pairs validation pairs (of --kinds), or the README example's nine recolours."""
    if args.example_recolours:
        return [edit_pair(example_scene(), Edit("recolor", shape=shape, color=color))
                for shape in SHAPES for color in EXAMPLE_COLOURS]
    drawn = evaluation_pairs(SPLIT, args.pairs if not args.kinds else 40 * args.pairs, demo_model.IMAGE_SIZE)
    return [p for p in drawn if not args.kinds or p.edit.kind in args.kinds][:args.pairs]


def run(args) -> dict:
    pairs = chosen_pairs(args)
    report: dict = {"pairs": len(pairs), "models": {}}
    for name, load in candidates(args).items():
        pipe = ip2p_pipeline(load())
        for sampler in SAMPLERS:
            edits = pipeline_edits(sampled(pipe, sampler), pairs, args.text_cfg, args.image_cfg)
            rows = report["models"][f"{name}, {sampler}"] = table([score(p, e) for p, e in zip(pairs, edits)])
            log.info("%s, %s: %.0f %% strict", name, sampler, 100 * rows[-1]["success"])
    return report


def markdown(report: dict, command: str) -> str:
    kinds = [row["kind"] for row in next(iter(report["models"].values()))]
    lines = [f"Command: `{command}`; {report['pairs']} pairs, {STEPS} "
             f"steps, diffusers' pipeline; strict success per kind (MSE ratio to the input unchanged); "
             f"{report['machine']}; {report['total_seconds'] / 60:.0f} min.", "",
             "| model, sampler | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, rows in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r['success']:.0f} % ({r['ratio']:.2f})" for r in rows) + " |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a training run's output folder: each of its checkpoints' EMA weights")
    source.add_argument("--model", type=Path, help="a single-file demo model")
    parser.add_argument("--start", type=Path, help="with --run: the single file the run started from (its other parts)")
    parser.add_argument("--pairs", type=int, default=120, help=f"the first this many {SPLIT} pairs (seed "
                        f"{SPLIT_SEEDS[SPLIT]})")
    parser.add_argument("--kinds", nargs="+", choices=EDIT_KINDS, help="only pairs of these kinds of edit")
    parser.add_argument("--example-recolours", action="store_true",
                        help="instead: the README example's nine recolours (each shape, red, purple, black)")
    parser.add_argument("--text-cfg", type=float, default=TEXT_CFG)
    parser.add_argument("--image-cfg", type=float, default=IMAGE_CFG)


if __name__ == "__main__":
    report_cli.main("demo_validation", __doc__, options, run, markdown)
