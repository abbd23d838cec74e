"""Fine-tune an SD (or IP2P) model into an InstructPix2Pix model on (original, instruction, edited) pairs.

    python -m training.train --model SD_FOLDER_OR_FILE --data PAIRS --output OUT \\
        --resolution 256 --batch-size 4 --steps 10000 --ema

The recipe of the InstructPix2Pix paper: `conv_in` widened from 4 to 8 channels with the
new ones zeroed, VAE and text encoder frozen, conditioning dropout for both guidance
terms. OUT gets `checkpoints/` (every --checkpoint-every steps; --resume latest picks up
the newest), `train_log.jsonl`, with --cache-encodings `encodings.pt`, and the result as
`diffusers/` and `<OUT name>.safetensors`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ip2p_core.errors import IP2PUserError

from .paired_data import Columns, PairTransform, read_pairs
from .train_checkpoints import latest_checkpoint, load_checkpoint, resolve_resume, save_checkpoint
from .train_step import FrozenEncoders, encode_text, ip2p_loss, sample_batch
from .trainable_model import load_model, save_model

log = logging.getLogger(__name__)
LOG_FILE = "train_log.jsonl"
DIFFUSERS_DIR = "diffusers"
ENCODINGS_FILE = "encodings.pt"  # the --cache-encodings cache, kept for a resumed run


@dataclass(frozen=True)
class TrainOptions:
    model: Path
    data: Path
    output: Path
    tokenizer: Optional[Path] = None
    columns: Columns = field(default_factory=Columns)
    resolution: int = 256
    center_crop: bool = False
    random_flip: bool = False
    batch_size: int = 4
    gradient_accumulation: int = 1
    learning_rate: float = 5e-5
    lr_decay_steps: int = 0  # the run's last this many steps lower the rate linearly to zero
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    steps: int = 1000
    seed: int = 0
    conditioning_dropout: float = 0.05
    changed_region_weight: float = 1.0  # the loss where the edit changes the latent counts this many times
    ema: bool = False
    ema_decay: float = 0.9999
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: Optional[str] = None
    device: str = "auto"
    cache_encodings: bool = False
    progress: bool = True
    write_single_file: bool = True  # the LDM single file beside the diffusers folder (a caller that packs needs none)


@dataclass(frozen=True)
class TrainResult:
    diffusers_dir: Path
    single_file: Optional[Path]  # None when the options asked for none
    last_loss: float


def train(options: TrainOptions) -> TrainResult:
    """Runs (or resumes) a training run and writes the trained model; see the module docstring."""
    output = Path(options.output)
    diffusers_dir, single_file = output / DIFFUSERS_DIR, output / f"{output.name}.safetensors"
    if options.resume is None and (diffusers_dir.exists() or single_file.exists() or latest_checkpoint(output)):
        raise IP2PUserError(f"{output} already holds a training run: pass --resume latest to continue it, "
                            "or choose another --output")
    pairs = read_pairs(options.data, options.columns)
    device = _device(options.device)
    model = load_model(options.model, options.tokenizer)
    for frozen in (model.vae, model.text_encoder):
        frozen.requires_grad_(False).eval().to(device)
    # channels_last: the layout oneDNN and cuDNN convolve fastest.
    unet = model.unet.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    ema = _ema(unet, options.ema_decay) if options.ema else None
    start = 0
    if options.resume is not None:
        checkpoint = resolve_resume(options.resume, output)
        start = load_checkpoint(checkpoint, unet, optimizer, ema)
        log.info("resuming from %s at step %d", checkpoint, start)
    output.mkdir(parents=True, exist_ok=True)
    transform = PairTransform(options.resolution, options.center_crop, options.random_flip)
    encoders = FrozenEncoders(model, options.cache_encodings)
    encodings = output / ENCODINGS_FILE
    if options.cache_encodings and options.resume is not None and encodings.is_file():
        if encoders.load(encodings):
            log.info("took the encodings cached in %s", encodings)
        else:
            log.warning("%s holds encodings of another VAE or text encoder: encoding again", encodings)
    empty_text = encode_text(model, [""])
    loss_value = float("nan")
    progress = _progress(start, options)
    step = start
    try:
        for step in range(start, options.steps):
            optimizer.zero_grad(set_to_none=True)
            rate = learning_rate(options, step)
            for group in optimizer.param_groups:
                group["lr"] = rate
            loss_value = 0.0
            for micro in range(options.gradient_accumulation):
                generator = torch.Generator().manual_seed(_draw_seed(options.seed, step, micro))
                batch = sample_batch(pairs, transform, options.batch_size, generator)
                loss = ip2p_loss(encoders, batch, empty_text, options.conditioning_dropout, generator,
                                 options.changed_region_weight)
                (loss / options.gradient_accumulation).backward()
                loss_value += loss.item() / options.gradient_accumulation
            _check_finite(loss_value, step)
            torch.nn.utils.clip_grad_norm_(unet.parameters(), options.max_grad_norm)
            optimizer.step()
            if ema is not None:
                ema.step(unet.parameters())
            _log_loss(output, step + 1, loss_value, rate)
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4f}")
            if (step + 1) % options.checkpoint_every == 0 or step + 1 == options.steps:
                save_checkpoint(output, step + 1, unet, optimizer, ema, options.keep_checkpoints)
                if options.cache_encodings:
                    encoders.save(encodings)
    except IP2PUserError as exc:
        kept = latest_checkpoint(output)
        raise IP2PUserError(f"{exc}. Training stopped at step {step}; "
                            + (f"the last checkpoint, {kept.name}, is kept: fix the data and pass --resume latest"
                               if kept else "no checkpoint had been written yet")) from exc
    finally:
        progress.close()
    if ema is not None:
        ema.copy_to(unet.parameters())
    unet.to(memory_format=torch.contiguous_format)  # safetensors writes contiguous tensors only
    if diffusers_dir.exists() or single_file.exists():
        log.warning("replacing the model an earlier part of this run wrote to %s", output)
    written = single_file if options.write_single_file else None
    save_model(model, diffusers_dir, written)
    log.info("wrote %s", " and ".join(str(path) for path in (diffusers_dir, written) if path))
    return TrainResult(diffusers_dir, written, loss_value)


def _ema(unet: torch.nn.Module, decay: float):
    from diffusers.training_utils import EMAModel

    return EMAModel(unet.parameters(), decay=decay)


def _device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _draw_seed(seed: int, step: int, micro: int) -> int:
    """One generator per micro-batch, so a resumed run draws what an uninterrupted one would."""
    return (seed * 1_000_003 + step * 1_009 + micro) % (2**63)


def _check_finite(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise IP2PUserError(f"the loss became {loss} at step {step}: lower --learning-rate "
                            "or check the data for blank or corrupt images")


def learning_rate(options: TrainOptions, step: int) -> float:
    """The rate of the update that makes step `step + 1`: constant, then (--lr-decay-steps) down
    linearly over the run's last steps, the last update at 1/N of it. A function of the step
    alone, so a resumed run follows it exactly; raising --steps later moves the decay too."""
    remaining = options.steps - step
    if options.lr_decay_steps and remaining < options.lr_decay_steps:
        return options.learning_rate * remaining / options.lr_decay_steps
    return options.learning_rate


def _log_loss(output: Path, step: int, loss: float, rate: float) -> None:
    with (output / LOG_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": step, "loss": loss, "lr": rate}) + "\n")


def _progress(start: int, options: TrainOptions):
    from tqdm.auto import tqdm

    return tqdm(total=options.steps, initial=start, desc="training", unit="step", disable=not options.progress)


def parse_args(argv: Optional[list[str]] = None) -> TrainOptions:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--model", type=Path, required=True, help="SD or IP2P model: diffusers folder or single-file checkpoint")
    add("--data", type=Path, required=True,
        help="pairs: a folder of <pair>/original.png, edited.png, instruction.txt; a .jsonl/.csv index; or a .parquet dataset")
    add("--output", type=Path, required=True, help="folder for checkpoints, log and the trained model")
    add("--tokenizer", type=Path, help="CLIP tokenizer folder (vocab.json, merges.txt); needed for single files")
    add("--original-column", default=Columns.original)
    add("--instruction-column", default=Columns.instruction)
    add("--edited-column", default=Columns.edited)
    add("--resolution", type=int, default=256, help="training crop size in pixels (multiple of 8)")
    add("--center-crop", action="store_true", help="crop the centre instead of a random square")
    add("--random-flip", action="store_true", help="flip pairs horizontally at random (not for left/right edits)")
    add("--batch-size", type=int, default=4)
    add("--gradient-accumulation", type=int, default=1)
    add("--learning-rate", type=float, default=5e-5)
    add("--lr-decay-steps", type=int, default=0, metavar="N",
        help="lower the learning rate linearly to zero over the run's last N steps (default 0: constant)")
    add("--weight-decay", type=float, default=1e-2)
    add("--max-grad-norm", type=float, default=1.0)
    add("--steps", type=int, default=1000, help="optimiser steps in all (a resumed run continues to this)")
    add("--seed", type=int, default=0)
    add("--conditioning-dropout", type=float, default=0.05, help="q: text dropped when p < 2q, image when q <= p < 3q")
    add("--changed-region-weight", type=float, default=1.0, metavar="W",
        help="count the loss W times where the edit changes the image's latent (local edits teach which "
             "object to change; 1: a plain mean)")
    add("--ema", action="store_true", help="keep an exponential moving average of the UNet and save it")
    add("--ema-decay", type=float, default=0.9999)
    add("--checkpoint-every", type=int, default=500)
    add("--keep-checkpoints", type=int, default=2)
    add("--resume", help="'latest' or a checkpoint folder")
    add("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    add("--cache-encodings", action="store_true",
        help="encode each image and instruction once and keep it, in OUT/encodings.pt for a resumed run "
             "(small data sets drawn many times over)")
    args = parser.parse_args(argv)
    if args.resolution % 8:
        parser.error(f"--resolution must be a multiple of 8, got {args.resolution}")
    for name in ("batch_size", "gradient_accumulation", "steps", "checkpoint_every", "keep_checkpoints"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.changed_region_weight < 1:
        parser.error(f"--changed-region-weight must be 1 or more, got {args.changed_region_weight}")
    if args.lr_decay_steps < 0:
        parser.error(f"--lr-decay-steps must be 0 or more, got {args.lr_decay_steps}")
    columns = Columns(args.original_column, args.instruction_column, args.edited_column)
    values = {k: v for k, v in vars(args).items() if not k.endswith("_column")}
    return TrainOptions(columns=columns, **values)


def main(argv: Optional[list[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = parse_args(argv)
    try:
        result = train(options)
    except IP2PUserError as exc:
        raise SystemExit(f"error: {exc}") from exc
    log.info("trained model: %s and %s", result.diffusers_dir, result.single_file)


if __name__ == "__main__":
    main()
