"""Makes the demo model the pack ships (`ip2p_core.demo_model`), start to finish, in one resumable command.

    python -m training.demo_recipe --work .cache/demo_recipe            # the shipped model
    python -m training.demo_recipe --work .cache/demo_recipe --device cuda

Stages, each skipped when its result is already in --work (so the command resumes where it
stopped; the UNet's training itself resumes from its last checkpoint). The first phase:

1. pairs: drawn training pairs (`synthetic_shapes`, training phrasings only, one shape size);
2. vae: a TAESD-format autoencoder fitted to those images, first to decode block colours, then
   end to end (`fit_tiny_autoencoder`); rounded to fp16, as shipped;
3. base: an SD1.5-layout IP2P diffusers folder: a random one-level 320-channel UNet, that VAE,
   the demo text encoder (`demo_packing.text_encoder_generated`), ComfyUI's CLIP tokenizer;
4. run: `python -m training.train` on it (conditioning dropout, EMA, checkpoints), packed into
   --work/first as the pack ships a model; the base and the run's checkpoints, which only start
   and resume that training, then go.

The first phase's model learns the global edits but often changes another shape than the one
named. The second phase, binding, trains that packed model further:

5. binding_pairs: pairs of another training draw, shape sizes varied, local edits drawn twice as
   often as global ones;
6. binding: `python -m training.train` from the first phase's model, the loss where the edit
   changes the latent counted `changed_region_weight` times, at a higher learning rate;
7. the trained model packed into --models (`demo_packing.write_shipped`: int8 UNet rows, fp16 VAE),
   its record naming the command, the commits it ran from, the settings and the steps.

The text encoder is zero but for a few layers; its fp32 copies in the base and the trained
outputs (`trainable_model.save_model`) are sparse files where the file system allows
(`training.sparse_files`): 160 MB of disk each instead of 470.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from ip2p_core import demo_model
from ip2p_core.formats.diffusers_to_ldm import VAE_PREFIX
from ip2p_core.formats.latents import Family

from .demo_packing import text_encoder_state, write_shipped
from .ldm_checkpoint import ldm_checkpoint
from .paired_data import image_to_tensor, load_pair, read_pairs
from .sparse_files import dig_holes, dig_holes_in
from .synthetic_shapes import make_pairs, write_pair_folder
from .train import TrainOptions, train
from .train_checkpoints import CHECKPOINTS, STATE_FILE, latest_checkpoint
from .trainable_model import SD15_NOISE_SCHEDULE, comfy_tokenizer_dir, load_model

log = logging.getLogger(__name__)

UNET_CONFIG: dict[str, Any] = {
    # What ComfyUI detects as SD1.5 InstructPix2Pix (320 channels, text width 768, 8 heads), with a
    # single resolution level: the scenes' 8 x 8 latents need no downsampling.
    "sample_size": demo_model.IMAGE_SIZE // 8,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D"],
    "block_out_channels": [320],
    "layers_per_block": 1,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}


@dataclass(frozen=True)
class Recipe:
    pairs: int = 30000
    vae_pairs: int = 4000  # the autoencoder sees both images of the first this many pairs
    vae_colour_steps: int = 600  # stage 1: the decoder learns to draw from block colours
    vae_joint_steps: int = 1400  # stage 2: encoder and decoder end to end
    vae_batch: int = 32
    vae_crop: int = 32
    train_steps: int = 5500
    batch_size: int = 32
    learning_rate: float = 1e-4  # constant, then down to zero over the last lr_decay_steps
    lr_decay_steps: int = 1500
    conditioning_dropout: float = 0.05
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    keep_checkpoints: int = 2  # the newest ones kept; not part of the model (a run may resume with another)
    seed: int = 0
    # The second phase, binding: the first phase's packed model trained further on scenes of varied
    # shape sizes, local edits drawn twice as often, the loss where the edit changes the picture
    # counted `changed_region_weight` times, at a higher rate (`training.train`).
    binding_pairs: int = 10000
    binding_kind_weights: dict[str, float] = field(default_factory=lambda: {
        "recolor": 2.0, "remove": 2.0, "background": 1.0, "night": 1.0, "move": 2.0, "add": 2.0})
    binding_steps: int = 2500
    binding_learning_rate: float = 3e-4
    binding_lr_decay_steps: int = 800
    changed_region_weight: float = 4.0


QUICK = Recipe(pairs=16, vae_pairs=4, vae_colour_steps=2, vae_joint_steps=2, vae_batch=4, train_steps=2, batch_size=2,
               lr_decay_steps=0, checkpoint_every=2, keep_checkpoints=1, binding_pairs=16, binding_steps=2,
               binding_lr_decay_steps=0)
FIRST_PHASE, BINDING_PHASE = "first", "binding"  # folders of --work: the first phase's packed model, the second's run


def run(work: Path, models: Path, recipe: Recipe = Recipe(), device: str = "auto") -> Path:
    """Every stage not yet done in `work`; returns the record of the packed model in `models`."""
    work.mkdir(parents=True, exist_ok=True)
    _same_recipe(work, recipe)
    first = work / FIRST_PHASE
    if not (first / demo_model.RECORD_NAME).is_file():
        write_shipped(ldm_state_of(_first_phase(work, recipe, device)), first)
        for needed_by_nothing_now in (work / "base", work / "run" / CHECKPOINTS):  # the first phase is packed
            shutil.rmtree(needed_by_nothing_now)
    pairs_dir = work / "binding_pairs"
    if not (pairs_dir / "done").is_file():
        write_pair_folder(pairs_dir, make_pairs(recipe.binding_pairs, recipe.seed + 1, demo_model.IMAGE_SIZE,
                                                varied=True, kind_weights=recipe.binding_kind_weights))
        (pairs_dir / "done").write_text("")
    start = work / "first.safetensors"  # the first phase's packed model, expanded: what the binding run starts from
    if not start.is_file():
        save_file(demo_model.load_state_dict(first), str(start))
        dig_holes(start)  # the text encoder's zero layers
    run_dir = work / BINDING_PHASE
    trained = run_dir / "diffusers"
    if not (trained / "model_index.json").is_file() or _trained_steps(run_dir) < recipe.binding_steps:
        _note_source(run_dir)
        train(TrainOptions(
            model=start, tokenizer=comfy_tokenizer_dir(), data=pairs_dir, output=run_dir,
            resolution=demo_model.IMAGE_SIZE, center_crop=True, batch_size=recipe.batch_size,
            learning_rate=recipe.binding_learning_rate, lr_decay_steps=recipe.binding_lr_decay_steps,
            steps=recipe.binding_steps, seed=recipe.seed + 1, conditioning_dropout=recipe.conditioning_dropout,
            changed_region_weight=recipe.changed_region_weight, ema=True, ema_decay=recipe.ema_decay,
            checkpoint_every=recipe.checkpoint_every, keep_checkpoints=recipe.keep_checkpoints,
            resume="latest" if latest_checkpoint(run_dir) else None, device=device, cache_encodings=True,
            write_single_file=False))
    made_by = {**json.loads((run_dir / SOURCE_FILE).read_text()), "settings": _settings(recipe),
               "steps": {"first": recipe.train_steps, "binding": _trained_steps(run_dir)},
               "first_phase_expanded_sha256": demo_model.read_record(first)["expanded_sha256"]}
    return write_shipped(ldm_state_of(trained), models, made_by)


COMMAND = "python -m training.demo_recipe --work WORK"
SOURCE_FILE = "source.json"  # in the binding run's folder: the command and the commits its training ran from


def _note_source(run_dir: Path) -> None:
    """Adds the commit this process runs from to the run's list (a resumed run may run from a later one)."""
    path = run_dir / SOURCE_FILE
    source = json.loads(path.read_text()) if path.is_file() else {"command": COMMAND, "commits": []}
    if source_commit() not in source["commits"]:
        source["commits"].append(source_commit())
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(source, indent=2) + "\n")


def source_commit() -> str:
    """The repository's commit, "+changes" when the training or model code differs from it ("unknown" outside git)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        changes = subprocess.run(["git", "status", "--porcelain", "--", "training", "ip2p_core"], cwd=repo,
                                 capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+changes" if changes.stdout.strip() else "")


def _first_phase(work: Path, recipe: Recipe, device: str) -> Path:
    """Stages 1-4: the first phase's trained diffusers folder."""
    pairs_dir = work / "pairs"
    if not (pairs_dir / "done").is_file():
        write_pair_folder(pairs_dir, make_pairs(recipe.pairs, recipe.seed, demo_model.IMAGE_SIZE))
        (pairs_dir / "done").write_text("")
    vae_dir = work / "vae"
    if not (vae_dir / "config.json").is_file():
        images = torch.stack([image_to_tensor(image) for pair in read_pairs(pairs_dir)[:recipe.vae_pairs]
                              for image in load_pair(pair)])
        fit_tiny_autoencoder(images, recipe, _device(device)).save_pretrained(vae_dir)
    base = work / "base"
    if not (base / "model_index.json").is_file():
        build_base(base, vae_dir, recipe.seed)
    run_dir = work / "run"
    trained = run_dir / "diffusers"
    if not (trained / "model_index.json").is_file() or _trained_steps(run_dir) < recipe.train_steps:
        train(TrainOptions(
            model=base, data=pairs_dir, output=run_dir, resolution=demo_model.IMAGE_SIZE, center_crop=True,
            batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, lr_decay_steps=recipe.lr_decay_steps,
            steps=recipe.train_steps, seed=recipe.seed, conditioning_dropout=recipe.conditioning_dropout, ema=True,
            ema_decay=recipe.ema_decay, checkpoint_every=recipe.checkpoint_every,
            keep_checkpoints=recipe.keep_checkpoints,
            resume="latest" if latest_checkpoint(run_dir) else None, device=device, cache_encodings=True,
            write_single_file=False))
    return trained


def fit_tiny_autoencoder(images: Tensor, recipe: Recipe, device: torch.device):
    """A TAESD-format autoencoder for `images` ((N, 3, H, W) in [-1, 1]), as the pack's AutoencoderTiny.

    From scratch, end to end, this deep ReLU network barely moves in the steps a CPU affords.
    So it is taught in two stages: first the encoder to output each 8 x 8 block's mean colour
    (and zero in the fourth channel) while the decoder learns to draw the scene from those
    colours; then both end to end, the fourth channel free to carry what colours cannot (edges
    inside a block). The latent stays a small colour image, smooth for the UNet to denoise.
    The result is rounded to fp16 (as shipped) and its encoder divided by the SD1.5 latent factor
    (`trainable_model.vae_latent_scale`).
    """
    from diffusers import AutoencoderTiny

    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    vae = AutoencoderTiny().to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    total = recipe.vae_colour_steps + recipe.vae_joint_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / max(total, 1))))
    for step in range(total):
        x = _crops(images, recipe.vae_batch, recipe.vae_crop, generator).to(device, memory_format=torch.channels_last)
        latent = vae.encoder(x)
        if step < recipe.vae_colour_steps:
            colours = block_colours(x)
            noise = LATENT_NOISE * torch.randn(colours.shape, generator=generator).to(device)
            reconstruction = F.mse_loss(vae.decoder(colours + noise), x)
            loss = F.mse_loss(latent, colours) + reconstruction
        else:
            noise = LATENT_NOISE * torch.randn(latent.shape, generator=generator).to(device)
            reconstruction = F.mse_loss(vae.decoder(latent + noise), x)
            loss = reconstruction + 0.1 * F.mse_loss(latent[:, :3], block_colours(x)[:, :3])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            log.info("autoencoder step %d/%d: loss %.5f, reconstruction %.5f", step + 1, total, loss.item(),
                     reconstruction.item())
    vae = vae.cpu().to(memory_format=torch.contiguous_format).eval()
    with torch.no_grad():
        for param in vae.parameters():
            param.copy_(param.half().float())
        last = vae.encoder.layers[-1]
        for param in (last.weight, last.bias):
            param.div_(Family.SD15.value.scaling_factor)
    return vae


LATENT_NOISE = 0.05
COLOUR_GAIN = 1.5  # block colours in [-1.5, 1.5]: about unit spread for the UNet


def block_colours(x: Tensor) -> Tensor:
    colours = F.avg_pool2d(x, 8) * COLOUR_GAIN
    return torch.cat([colours, torch.zeros_like(colours[:, :1])], dim=1)


def _crops(images: Tensor, batch: int, crop: int, generator: torch.Generator) -> Tensor:
    """A batch of `crop`-pixel squares on the 8-pixel latent grid (the encoder downsamples by 8)."""
    chosen = images[torch.randint(len(images), (batch,), generator=generator)]
    cells = (images.shape[-1] - crop) // 8 + 1
    top, left = (torch.randint(cells, (2,), generator=generator) * 8).tolist()
    return chosen[:, :, top:top + crop, left:left + crop]


def build_base(out: Path, vae_dir: Path, seed: int) -> Path:
    """The untrained IP2P diffusers folder the recipe trains."""
    from diffusers import (
        AutoencoderTiny,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from .ldm_to_diffusers import text_encoder_config_from_ldm

    torch.manual_seed(seed)
    text_state = text_encoder_state()
    # fp16, as the demo model ships it: half the disk, and training loads it as fp32 (same values).
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config_from_ldm(text_state))).half()
    text_encoder.load_state_dict(text_state)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=AutoencoderTiny.from_pretrained(vae_dir), text_encoder=text_encoder.eval(),
        tokenizer=CLIPTokenizer.from_pretrained(str(comfy_tokenizer_dir())), unet=UNet2DConditionModel(**UNET_CONFIG),
        scheduler=EulerAncestralDiscreteScheduler.from_config(SD15_NOISE_SCHEDULE), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    dig_holes_in(out)
    return out


def ldm_state_of(diffusers_dir: Path) -> dict[str, Tensor]:
    """The trained model as the single-file state dict it ships as: UNet fp32, VAE fp16 (with its fp32 scale)."""
    model = load_model(diffusers_dir)
    cpu = lambda module: {k: v.detach().float().cpu().contiguous() for k, v in module.state_dict().items()}  # noqa: E731
    state = ldm_checkpoint(cpu(model.unet), dict(model.unet.config), cpu(model.vae), dict(model.vae.config),
                           cpu(model.text_encoder))
    return {k: v.half() if k.startswith(VAE_PREFIX) and v.ndim else v for k, v in state.items()}


def _same_recipe(work: Path, recipe: Recipe) -> None:
    """A --work folder belongs to one recipe: resuming it with other settings would mix two models.
    Only the binding phase's step count may grow (--steps): training then continues from its last
    checkpoint (the learning rate's decay moves with it, so grow it before the decay begins)."""
    path = work / "recipe.json"
    settings = _settings(recipe)
    if path.is_file():
        if _model_settings(json.loads(path.read_text())) != _model_settings(settings):
            raise SystemExit(f"error: {work} holds a run of another recipe ({path}); use a new --work folder")
    path.write_text(json.dumps(settings, indent=2))


def _settings(recipe: Recipe) -> dict[str, Any]:
    """The recipe as JSON reads it back."""
    return json.loads(json.dumps(asdict(recipe)))


def _model_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that make the model: all but the binding phase's step count and how many checkpoints are kept."""
    return {k: v for k, v in settings.items() if k not in ("binding_steps", "keep_checkpoints")}


def _trained_steps(run_dir: Path) -> int:
    checkpoint = latest_checkpoint(run_dir)
    return json.loads((checkpoint / STATE_FILE).read_text())["step"] if checkpoint else 0


def _device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.demo_recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the stages' results (resumed if present)")
    parser.add_argument("--models", type=Path, default=demo_model.MODELS_DIR,
                        help="where the packed model goes (the pack's models/ folder by default)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    parser.add_argument("--steps", type=int,
                        help=f"the binding phase's UNet training steps (default {Recipe.binding_steps})")
    parser.add_argument("--quick", action="store_true", help="every stage on a handful of pairs (seconds; tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    recipe = QUICK if args.quick else Recipe()
    if args.steps:
        recipe = replace(recipe, binding_steps=args.steps)
    started = time.perf_counter()
    record = run(args.work, args.models, recipe, args.device)
    log.info("packed the demo model: %s (%.0f s)", record, time.perf_counter() - started)


if __name__ == "__main__":
    main()
