"""Proof that `python -m ip2p_core.train` teaches a model to edit, on a task a CPU learns in minutes.

    python benchmarks/train_shapes.py            # the full run recorded in benchmarks/RESULTS.md
    python benchmarks/train_shapes.py --quick    # seconds: every stage on a handful of pairs

1. synthetic pairs (`ip2p_core.synthetic_shapes`): a training set and held-out pairs drawn
   with another seed;
2. a small SD1.x-style model (`ip2p_core.small_sd`): its VAE fitted to the training images,
   the text encoder random and frozen, the UNet random with 4 input channels;
3. `ip2p_core.train` on it: conv_in widened to 8, conditioning dropout, EMA, checkpoints;
4. on the held-out pairs, the pixel error (MSE, values in [0, 1]) against the drawn targets of
   (a) returning the input unchanged, (b) the widened model before training, (c) the trained
   model, over a grid of text and image CFG scales; beside them the VAE's reconstruction
   error of the targets, the floor for any edit that goes through it.

Everything lands in a fresh folder under .cache/train_shapes (or --work); the report is
printed as Markdown and written beside it as report.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
for path in (str(REPO), str(REPO / "scripts")):
    if path not in sys.path:
        sys.path.insert(0, path)

from ip2p_core.evaluate_edits import edit_scores, identity_mse, reconstruction_mse  # noqa: E402
from ip2p_core.paired_data import image_to_tensor, load_pair, read_pairs  # noqa: E402
from ip2p_core.small_sd import make_small_sd  # noqa: E402
from ip2p_core.synthetic_shapes import make_pairs, write_pair_folder  # noqa: E402
from ip2p_core.train import TrainOptions, train  # noqa: E402
from ip2p_core.trainable_model import load_model  # noqa: E402
from model_factory import comfy_tokenizer_dir  # noqa: E402

DEFAULT_WORK = REPO / ".cache" / "train_shapes"


@dataclass(frozen=True)
class Settings:
    train_pairs: int
    heldout_pairs: int
    image_size: int
    vae_steps: int
    train_steps: int
    batch_size: int
    learning_rate: float
    conditioning_dropout: float
    ema_decay: float
    eval_steps: int
    guidance: tuple[tuple[float, float], ...]  # (text_cfg, image_cfg); text_cfg 1 = no guidance at all


FULL = Settings(train_pairs=2000, heldout_pairs=100, image_size=32, vae_steps=1200, train_steps=3500, batch_size=32,
                learning_rate=1e-3, conditioning_dropout=0.05, ema_decay=0.999, eval_steps=20,
                guidance=((1.0, 1.0), (1.5, 1.5), (3.0, 1.0), (3.0, 1.5), (3.0, 2.5), (3.0, 4.0), (7.5, 1.0),
                          (7.5, 1.5), (7.5, 2.5), (7.5, 4.0)))
QUICK = Settings(train_pairs=32, heldout_pairs=4, image_size=32, vae_steps=4, train_steps=4, batch_size=4,
                 learning_rate=5e-4, conditioning_dropout=0.05, ema_decay=0.999, eval_steps=2,
                 guidance=((1.0, 1.0), (7.5, 1.5)))
DEFAULT_GUIDANCE = (7.5, 1.5)  # the paper's defaults: the untrained model is scored there


def run(settings: Settings, work: Path, seed: int = 0) -> dict:
    """All four stages in `work`; returns the report."""
    started = time.perf_counter()
    train_dir = write_pair_folder(work / "train_pairs", make_pairs(settings.train_pairs, seed, settings.image_size))
    heldout_dir = write_pair_folder(work / "heldout_pairs",
                                    make_pairs(settings.heldout_pairs, seed + 1, settings.image_size))
    heldout = read_pairs(heldout_dir)

    images = torch.stack([image_to_tensor(image) for pair in read_pairs(train_dir) for image in load_pair(pair)])
    t0 = time.perf_counter()
    base = make_small_sd(work / "small_sd", images, comfy_tokenizer_dir(), settings.vae_steps, seed)
    vae_seconds = time.perf_counter() - t0

    untrained = edit_scores(load_model(base), heldout, [DEFAULT_GUIDANCE], settings.eval_steps, seed)[0]
    t0 = time.perf_counter()
    result = train(TrainOptions(
        model=base, data=train_dir, output=work / "run", resolution=settings.image_size,
        batch_size=settings.batch_size, learning_rate=settings.learning_rate, steps=settings.train_steps,
        seed=seed, conditioning_dropout=settings.conditioning_dropout, ema=True, ema_decay=settings.ema_decay,
        checkpoint_every=max(1, settings.train_steps // 4), weight_decay=0.0,
    ))
    train_seconds = time.perf_counter() - t0
    trained_model = load_model(result.diffusers_dir)
    trained = edit_scores(trained_model, heldout, list(settings.guidance), settings.eval_steps, seed)
    losses = [json.loads(line)["loss"] for line in (work / "run" / "train_log.jsonl").read_text().splitlines()]
    window = max(1, len(losses) // 10)
    return {
        "settings": asdict(settings),
        "identity_mse": identity_mse(heldout),
        "vae_floor_mse": reconstruction_mse(trained_model, heldout),
        "untrained": asdict(untrained),
        "trained": [asdict(score) for score in trained],
        "loss_first": float(np.mean(losses[:window])),
        "loss_last": float(np.mean(losses[-window:])),
        "vae_seconds": vae_seconds,
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - started,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "model": str(result.diffusers_dir),
    }


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        f"{s['train_pairs']} training pairs, {s['heldout_pairs']} held-out, {s['image_size']} px; VAE fitted for "
        f"{s['vae_steps']} steps ({report['vae_seconds']:.0f} s); IP2P training {s['train_steps']} steps of "
        f"{s['batch_size']} at lr {s['learning_rate']}, q = {s['conditioning_dropout']}, EMA "
        f"{s['ema_decay']} ({report['train_seconds']:.0f} s); sampling {s['eval_steps']} Euler ancestral steps. "
        f"Training loss {report['loss_first']:.4f} (first tenth) -> {report['loss_last']:.4f} (last tenth). "
        f"{report['machine']}.",
        "",
        "| edit | text CFG | image CFG | MSE vs target | / identity |",
        "|---|---|---|---|---|",
    ]
    identity = report["identity_mse"]
    row = lambda name, t, i, mse: f"| {name} | {t} | {i} | {mse:.5f} | {mse / identity:.2f} |"  # noqa: E731
    lines.append(row("input unchanged (identity)", "-", "-", identity))
    lines.append(row("target through the VAE (floor)", "-", "-", report["vae_floor_mse"]))
    u = report["untrained"]
    lines.append(row("before training", u["text_cfg"], u["image_cfg"], u["mse"]))
    lines += [row("trained", t["text_cfg"], t["image_cfg"], t["mse"]) for t in report["trained"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every stage on a handful of pairs (seconds)")
    parser.add_argument("--work", type=Path, help="a new folder for this run (default: a fresh one under .cache)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    work = args.work or DEFAULT_WORK / time.strftime("run-%Y%m%d-%H%M%S")
    if work.exists() and any(work.iterdir()):
        parser.error(f"--work {work} is not empty: pass a new folder")
    report = run(QUICK if args.quick else FULL, work, args.seed)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    sys.stdout.write(markdown(report) + "\n")


if __name__ == "__main__":
    main()
