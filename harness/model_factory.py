"""Deterministic tiny-but-real SD1.5 InstructPix2Pix test models, on disk, offline.

Tests and benchmarks need models in the two formats users have: an LDM single-file
`.safetensors` (what ComfyUI's checkpoint loader and model detection read) and a diffusers folder
(what the diffusers reference pipeline reads). The mechanics tests (parity, controls, loaders)
run on the tiny one: fp16-exact random weights and an AutoencoderKL bound their tolerances; the
rest run on the shipped demo model (harness/demo_files.py). Real weights cannot be downloaded
here, so both formats are generated from fixed seeds:

* UNet: SD1.5-shaped (320 channels, context 768, 8 heads) but only two levels with one
  layer each, so ComfyUI detects it as SD1.5 InstructPix2Pix while it stays small and fast.
  Every parameter is random, none zero, so the output depends on the image-latent channels,
  the text context and the timestep. Its eps prediction has
  unit scale, but a random UNet does not denoise: sampled latents keep roughly the
  starting noise scale (std about 15-25 after 10 Euler steps). Compare them with each
  other, never against "clean" values.
* `build_sd15_full_ip2p`: the same recipe with the real SD1.5 UNet (about 860M parameters,
  3.4 GB in fp32): what the speed and memory benchmarks time.
* VAE and CLIP-L text encoder: full SD1.5 shapes, because ComfyUI builds those from
  fixed configs rather than from the checkpoint's shapes. Only the parts a key mapping or the
  output needs stay random, as in the SDXL family: CLIP-L's first and last two layers (the
  others' attention and MLP weights are zero, each passes its input on), its first 16384 token
  rows and the start and end tokens (`zero_text_tower_but_`), and the first res block of each
  VAE level (`zero_vae_inner_resnets_`). The zeros are holes in both files (`dig_holes`).

Every weight is rounded through fp16, so storing it as fp16 loses nothing and both formats
hold exactly the same values; the tiny model's files are all fp16, half the disk (on the CPU
ComfyUI, diffusers and transformers still compute in fp32). Only the full model's LDM file
keeps its UNet in fp32, so the benchmarks' load and memory figures stay comparable.

Builds are cached under `cache_root/<factory_version()>/`; the version hashes this file and the
format modules it writes with (key maps, noise schedule), so editing them invalidates old builds (the test session
deletes them: `prune_stale_builds`). A build is written to a temporary directory and renamed into
place, so a half-written model is never used.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from ip2p_core.formats import diffusers_folder, diffusers_to_ldm
from training.ldm_checkpoint import ldm_checkpoint
from training.sparse_files import dig_holes, dig_holes_in
from training.trainable_model import SD15_NOISE_SCHEDULE, comfy_tokenizer_dir

log = logging.getLogger(__name__)

FACTORY_VERSION = 1  # bump on changes the source hash cannot see (e.g. a library upgrade that changes outputs)
DEFAULT_CACHE_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "test_models"

UNET_SEED = 1234
VAE_SEED = 2345
TEXT_ENCODER_SEED = 3456
# Layers of a generated CLIP-L that stay random; SD1.5 reads the last, SDXL the penultimate. The
# others' attention and MLP weights are zero (`zero_text_tower_but_`), holes in the files, not disk.
CLIP_L_RANDOM_LAYERS = (0, 10, 11)
RANDOM_TOKENS = 16384  # token embedding rows that stay random, besides the last two (start, end)
IDENTITY_PARTS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1",
                  "mlp.fc2")
UNET_BLOCK_IDENTITY_PARTS = ("attn1", "attn2", "ff")  # of a diffusers BasicTransformerBlock
# conv_out gain: with 1/sqrt(fan_in) weights after GroupNorm+SiLU the eps prediction has a
# std of about 0.55; this brings it to about 1, like a trained model's epsilon.
UNET_CONV_OUT_GAIN = 1.8
NORM_WEIGHT_JITTER = 0.1
BIAS_STD = 0.02

CHECKPOINT_NAME = "tiny_sd15_ip2p.safetensors"
FULL_CHECKPOINT_NAME = "sd15_full_ip2p.safetensors"


@dataclass(frozen=True)
class TinyModel:
    """One built test model: the same weights as an LDM single file and a diffusers folder."""

    name: str
    in_channels: int
    root: Path
    checkpoint: Path  # LDM single file: VAE and CLIP fp16, the UNet in checkpoint_unet_dtype
    diffusers_dir: Path  # save_pretrained layout: unet/ vae/ text_encoder/ tokenizer/ scheduler/
    unet_config: dict[str, Any] = field(hash=False)  # UNet2DConditionModel(**unet_config)
    vae_config: dict[str, Any] = field(hash=False)  # AutoencoderKL(**vae_config)
    text_encoder_config: dict[str, Any] = field(hash=False)  # CLIPTextConfig(**text_encoder_config)
    checkpoint_unet_dtype: torch.dtype = torch.float16  # the diffusers folder is all fp16


def sd15_unet_config(in_channels: int = 8) -> dict[str, Any]:
    """diffusers kwargs for the tiny SD1.5-shaped UNet (ComfyUI: model_channels 320, context 768)."""
    return {
        "sample_size": 64,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [320, 640],
        "layers_per_block": 1,
        "cross_attention_dim": 768,
        "attention_head_dim": 8,  # diffusers' name for SD1.5's 8 heads
        "norm_num_groups": 32,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }


def sd15_full_unet_config(in_channels: int = 8) -> dict[str, Any]:
    """diffusers kwargs for the real SD1.5 UNet: four levels (320, 640, 1280, 1280), two res
    blocks each, attention at the first three (about 860M parameters). For benchmarks, where
    the tiny UNet's cost would not say anything about real edits."""
    return {
        **sd15_unet_config(in_channels),
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
    }


def sd15_vae_config() -> dict[str, Any]:
    """The SD1.5 AutoencoderKL; ComfyUI always builds this shape for SD1.5 checkpoints."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 512,
        "scaling_factor": 0.18215,
    }


def sd15_text_encoder_config() -> dict[str, Any]:
    """CLIP ViT-L/14 text tower as SD1.5 ships it; ComfyUI's SD1 CLIP has this fixed shape."""
    return {
        "vocab_size": 49408,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "projection_dim": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": 0,
        "pad_token_id": 1,
        "eos_token_id": 2,
    }


def factory_version() -> str:
    """Cache directory name: changes whenever the code that decides the files' bytes changes."""
    digest = hashlib.sha256()
    for module in (__file__, diffusers_to_ldm.__file__, diffusers_folder.__file__):
        digest.update(Path(module).read_bytes())
    return f"v{FACTORY_VERSION}-{digest.hexdigest()[:12]}"


def build_sd15_ip2p(cache_root: Path = DEFAULT_CACHE_ROOT) -> TinyModel:
    """The tiny SD1.5 IP2P model, built once and cached."""
    return _build_cached(cache_root, "sd15_ip2p", lambda root: _describe(root, "sd15_ip2p"))


def build_sd15_full_ip2p(cache_root: Path = DEFAULT_CACHE_ROOT) -> TinyModel:
    """An IP2P model with the full SD1.5 UNet (`sd15_full_unet_config`), random weights made
    as for the tiny one, built once and cached (about 6 GB: the UNet is fp32 in the single file,
    fp16 in the diffusers folder)."""
    name = "sd15_full_ip2p"

    def describe(root: Path) -> TinyModel:
        return _describe(root, name, unet_config=sd15_full_unet_config(8), checkpoint_name=FULL_CHECKPOINT_NAME,
                         checkpoint_unet_dtype=torch.float32)

    return _build_cached(cache_root, name, describe)


def _build_cached(cache_root: Path, name: str, describe) -> TinyModel:
    model = describe(Path(cache_root).resolve() / factory_version() / name)
    build_once(model.root, lambda tmp: _build_into(tmp, describe(tmp)), lambda root: _is_complete(describe(root)))
    return model


def build_once(root: Path, build_into: Callable[[Path], None], is_complete: Callable[[Path], bool]) -> None:
    """Makes the folder `root` once for all processes: `build_into` fills a temporary sibling,
    renamed into place under a lock, so a reader never sees half a build."""
    if is_complete(root):
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f".{root.name}.lock"):
        if is_complete(root):  # another process built it while we waited
            return
        for leftover in root.parent.glob(f".{root.name}-tmp-*"):  # from a build that was killed; we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-tmp-", dir=root.parent))
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would survive the rename
        try:
            started = time.monotonic()
            build_into(tmp)
            if root.exists():  # a stale, incomplete build left by an older crash
                shutil.rmtree(root)
            os.replace(tmp, root)
            log.info("built test model %s in %.1f s at %s", root.name, time.monotonic() - started, root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(root):
        raise RuntimeError(f"test model build did not produce {root}")


# Cache folders the factories write: tiny models (factory_version), SDXL family, UltraEdit (SD3), LoRAs/ControlNet.
BUILD_DIR_PATTERN = re.compile(r"v\d+-[0-9a-f]{12}|sdxl-[0-9a-f]{12}|sd3-[0-9a-f]{12}"
                               r"|patches-v\d+-[0-9a-f]{12}-[0-9a-f]{12}")


def prune_stale_builds(cache_root: Path, keep: set[str]) -> list[Path]:
    """Delete cached builds whose folder is not in `keep` (the current versions): each edit of a
    factory leaves gigabytes behind otherwise. Only folders named as the factories name them go."""
    removed = []
    for child in sorted(Path(cache_root).glob("*")):
        if child.is_dir() and child.name not in keep and BUILD_DIR_PATTERN.fullmatch(child.name):
            shutil.rmtree(child)
            removed.append(child)
            log.info("removed stale test model build %s", child)
    return removed


def write_corrupt_checkpoint(path: Path, kind: Literal["truncated", "garbage"] = "truncated") -> Path:
    """A `.safetensors` file no loader can read, for error-path tests.

    "truncated": a valid header naming an IP2P `conv_in` tensor, but the data stops early,
    like an interrupted download. "garbage": bytes that are not a safetensors file at all.
    """
    if kind not in ("truncated", "garbage"):
        raise ValueError(f"kind must be 'truncated' or 'garbage', got {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        path.write_bytes(b"this is not a model file\x00\xff" * 8)
        return path
    shape = [320, 8, 3, 3]
    header = json.dumps({
        "model.diffusion_model.input_blocks.0.0.weight": {
            "dtype": "F32", "shape": shape, "data_offsets": [0, 4 * math.prod(shape)],
        }
    }).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 256)
    return path


# -- building ---------------------------------------------------------------------------


def _describe(root: Path, name: str, unet_config: dict[str, Any] | None = None,
              checkpoint_name: str | None = None, checkpoint_unet_dtype: torch.dtype = torch.float16) -> TinyModel:
    return TinyModel(
        name=name,
        in_channels=8,
        root=root,
        checkpoint=root / (checkpoint_name or CHECKPOINT_NAME),
        diffusers_dir=root / "diffusers",
        unet_config=unet_config or sd15_unet_config(8),
        vae_config=sd15_vae_config(),
        text_encoder_config=sd15_text_encoder_config(),
        checkpoint_unet_dtype=checkpoint_unet_dtype,
    )


def _is_complete(model: TinyModel) -> bool:
    # The root only appears by an atomic rename of a finished build; the checks guard
    # against someone deleting files inside it by hand.
    d = model.diffusers_dir
    return (
        model.checkpoint.is_file()
        and (d / "model_index.json").is_file()
        and all((d / sub).is_dir() and any((d / sub).iterdir())
                for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"))
    )


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialises builds across processes (e.g. parallel pytest workers) to avoid building twice."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(root: Path, model: TinyModel) -> None:
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with torch.no_grad():
        unet = UNet2DConditionModel(**model.unet_config).eval()
        randomise_(unet, UNET_SEED)
        unet.conv_out.weight.mul_(UNET_CONV_OUT_GAIN)
        _round_to_fp16_(unet)
        vae = AutoencoderKL(**model.vae_config).eval()
        randomise_(vae, VAE_SEED)
        zero_vae_inner_resnets_(vae)
        text_encoder = CLIPTextModel(CLIPTextConfig(**model.text_encoder_config)).eval()
        randomise_(text_encoder, TEXT_ENCODER_SEED)
        zero_text_tower_but_(text_encoder, CLIP_L_RANDOM_LAYERS)

    tokenizer_files = comfy_tokenizer_dir()
    tokenizer = CLIPTokenizer(
        vocab_file=str(tokenizer_files / "vocab.json"),
        merges_file=str(tokenizer_files / "merges.txt"),
        model_max_length=77,
    )
    scheduler = EulerDiscreteScheduler.from_config(SD15_NOISE_SCHEDULE)
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    half = lambda sd: {k: v.to(torch.float16) for k, v in sd.items()}  # noqa: E731 - exact: values are fp16-rounded
    state = ldm_checkpoint(
        {k: v.to(model.checkpoint_unet_dtype) for k, v in unet.state_dict().items()}, model.unet_config,
        half(vae.state_dict()), model.vae_config,
        half(text_encoder.state_dict()),
    )
    state = {k: v.contiguous() for k, v in state.items()}
    save_file(state, str(model.checkpoint), metadata={"format": "pt", "ip2p_test_factory": factory_version()})
    dig_holes(model.checkpoint)
    pipe.to(torch.float16).save_pretrained(model.diffusers_dir, safe_serialization=True)
    dig_holes_in(model.diffusers_dir)


def zero_text_tower_but_(encoder: torch.nn.Module, random_layers: tuple[int, ...]) -> None:
    """Zeroes the attention and MLP weights of every layer of a CLIP text tower but `random_layers`
    (each such layer then passes its input on; every layer is still converted by the same code, so a
    wrong key mapping shows in the random ones) and the token embedding rows past RANDOM_TOKENS but
    the start and end tokens: BPE ids come in merge order, so every common word, and every word the
    tests prompt with, keeps a random row; a rare word embeds as its position alone."""
    for index, layer in enumerate(encoder.text_model.encoder.layers):
        if index not in random_layers:
            zero_parts_(layer, IDENTITY_PARTS)
    encoder.text_model.embeddings.token_embedding.weight[RANDOM_TOKENS:-2].zero_()


def zero_vae_inner_resnets_(vae: torch.nn.Module) -> None:
    """Zeroes the convolutions of every res block of an AutoencoderKL but the first of each level:
    those have the same channels in and out (an identity shortcut), so each passes its input on."""
    for level in (*vae.encoder.down_blocks, *vae.decoder.up_blocks):
        for resnet in level.resnets[1:]:
            zero_parts_(resnet, ("conv1", "conv2"))


def zero_parts_(module: torch.nn.Module, parts: tuple[str, ...]) -> None:
    """Zeroes every parameter of `module`'s submodules `parts`: a residual block whose branch is
    zero passes its input on, and its bytes become holes in the files."""
    for part in parts:
        for param in module.get_submodule(part).parameters():
            param.zero_()


def randomise_(module: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded noise, rounded to fp16-representable values.

    Matrices and kernels get N(0, 1/fan_in) so activations keep roughly unit scale through
    the network; 1-D weights (norm scales) get 1 + small noise; biases small noise. Each
    tensor has its own generator seeded from its name, so values do not shift when an
    unrelated parameter is added or removed.
    """
    for name, param in sorted(module.named_parameters()):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
        if param.ndim >= 2:
            value = noise / math.sqrt(math.prod(param.shape[1:]))
        elif name.endswith("weight"):
            value = 1.0 + NORM_WEIGHT_JITTER * noise
        else:
            value = BIAS_STD * noise
        param.data.copy_(value.to(torch.float16).to(param.dtype))


def _round_to_fp16_(module: torch.nn.Module) -> None:
    for param in module.parameters():
        param.data.copy_(param.data.to(torch.float16).to(param.dtype))


# -- SDXL-family IP2P UNets: SDXL InstructPix2Pix (EPS) and CosXL Edit (EDM v-prediction) --
#
# ComfyUI detects `SDXL_instructpix2pix` from an LDM UNet with model_channels 320, linear
# proj_in/proj_out, transformer depths [0, 0, 2, 2, 10, 10] over the input blocks' res blocks,
# context 2048, adm (label_emb) input 2816 and 8 input channels; nothing else is matched. The
# same class becomes CosXL Edit (model type V_PREDICTION_EDM, sigmas from the file) when the
# state dict also holds `edm_vpred.sigma_max` (and `edm_vpred.sigma_min`). So the smallest UNet
# both hosts still detect keeps 320 channels at every level (channel_mult 1, 1, 1) and the 24
# transformer blocks of the input blocks, but has none in the output blocks and only one res
# block in the middle: about 134M parameters (a real SDXL UNet has 2.6G), stored as fp16
# (every weight is fp16-rounded, so nothing is lost; on the CPU ComfyUI runs it in fp32).
# Only the first and last transformer block of each stack are random: the 16 between have zero
# attention and feed-forward weights (each passes its input on), so their 100 MB in each of the
# five copies (two UNet-only files, the SDXL family's three) are holes in the files, not disk.
#
# The files are UNet-only, keys without the `model.diffusion_model.` prefix, for the hosts'
# UNET loaders: the 2024 host only recognises an LDM UNet by the bare `input_blocks.0.0.weight`,
# and upstream keeps the `edm_vpred.*` keys only when they sit beside unprefixed UNet keys (with
# the prefix, its UNet loader filters everything else out and CosXL loads as EPS).

SDXL_UNET_SEED = 4567
COSXL_SIGMA_MIN = 0.002  # CosXL Edit's edm_vpred values
COSXL_SIGMA_MAX = 120.0
SDXL_UNET_FILES = {False: "tiny_sdxl_ip2p_unet.safetensors", True: "tiny_cosxl_edit_unet.safetensors"}
# The diffusers names of SDXL's addition embedding, as LDM's label_emb Sequential numbers them.
_SDXL_ADM_KEYS = {"add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}


@dataclass(frozen=True)
class TinyUNet:
    """One built UNet-only test model."""

    name: str
    edm: bool  # True: CosXL Edit (V_PREDICTION_EDM), False: SDXL IP2P (EPS)
    root: Path
    unet: Path  # UNet-only LDM file: bare keys, fp16 (+ edm_vpred.sigma_min/max for CosXL)
    unet_config: dict[str, Any] = field(hash=False)  # UNet2DConditionModel(**unet_config) made the weights


def sdxl_ip2p_unet_config() -> dict[str, Any]:
    """diffusers kwargs for the smallest UNet ComfyUI detects as SDXL InstructPix2Pix (see above)."""
    return {
        "sample_size": 64,
        "in_channels": 8,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["UpBlock2D", "UpBlock2D", "UpBlock2D"],  # no attention: not matched on
        "mid_block_type": "UNetMidBlock2D",  # one res block: LDM transformer_depth_middle -1
        "block_out_channels": [320, 320, 320],
        "layers_per_block": 2,
        "transformer_layers_per_block": [1, 2, 10],  # ComfyUI: [0, 0, 2, 2, 10, 10]
        "cross_attention_dim": 2048,
        "attention_head_dim": 5,  # diffusers' name for the head count: 64 channels per head, as SDXL
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,  # pooled CLIP-G 1280 + 6 x 256 size embeddings
        "norm_num_groups": 32,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
    }


def build_sdxl_ip2p_unet(cache_root: Path = DEFAULT_CACHE_ROOT, edm: bool = False) -> TinyUNet:
    """The tiny SDXL IP2P UNet (EPS), or with `edm` the CosXL Edit one (same weights plus the
    `edm_vpred.*` keys), built once and cached under `cache_root/<factory_version()>/`."""
    name = "cosxl_edit_unet" if edm else "sdxl_ip2p_unet"
    root = Path(cache_root).resolve() / factory_version() / name
    model = TinyUNet(name=name, edm=edm, root=root, unet=root / SDXL_UNET_FILES[edm],
                     unet_config=sdxl_ip2p_unet_config())
    if model.unet.is_file():
        return model
    base = build_sdxl_ip2p_unet(cache_root, edm=False) if edm else None
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root.parent / f".{name}.lock"):
        if model.unet.is_file():  # another process built it while we waited
            return model
        started = time.monotonic()
        if base is not None:
            from safetensors.torch import load_file
            state = load_file(str(base.unet))
            state["edm_vpred.sigma_min"] = torch.tensor(COSXL_SIGMA_MIN)
            state["edm_vpred.sigma_max"] = torch.tensor(COSXL_SIGMA_MAX)
        else:
            state = _sdxl_ip2p_unet_state(model.unet_config)
        _save_atomically(state, model.unet)
        log.info("built test model %s in %.1f s at %s", name, time.monotonic() - started, model.root)
    return model


def sdxl_ip2p_unet(config: dict[str, Any]) -> torch.nn.Module:
    """The tiny SDXL IP2P UNet in diffusers layout: every file of it holds these weights (see above)."""
    from diffusers import UNet2DConditionModel

    with torch.no_grad():
        unet = UNet2DConditionModel(**config).eval()
        randomise_(unet, SDXL_UNET_SEED)
        unet.conv_out.weight.mul_(UNET_CONV_OUT_GAIN)
        _round_to_fp16_(unet)
        for stack in (module for module in unet.modules() if hasattr(module, "transformer_blocks")):
            for block in list(stack.transformer_blocks)[1:-1]:
                zero_parts_(block, UNET_BLOCK_IDENTITY_PARTS)
    return unet


def _sdxl_ip2p_unet_state(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    from ip2p_core.formats.diffusers_to_ldm import UNET_PREFIX, unet_to_ldm

    weights = {k: v.to(torch.float16).contiguous() for k, v in sdxl_ip2p_unet(config).state_dict().items()}
    adm = {}
    for key in [k for k in weights if k.startswith("add_embedding.")]:
        module, _, param = key.rpartition(".")
        adm[f"{_SDXL_ADM_KEYS[module]}.{param}"] = weights.pop(key)
    state = {k[len(UNET_PREFIX):]: v for k, v in unet_to_ldm(weights, config).items()}
    clash = state.keys() & adm.keys()
    if clash:
        raise KeyError(f"LDM keys produced twice: {sorted(clash)}")
    return {**state, **adm}


def _save_atomically(state: dict[str, torch.Tensor], path: Path) -> None:
    """Writes a safetensors file (its zero chunks holes) under a temporary name, then renames it into place."""
    from safetensors.torch import save_file

    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-tmp-", dir=path.parent)
    os.close(handle)
    try:
        save_file(state, tmp, metadata={"format": "pt", "ip2p_test_factory": factory_version()})
        dig_holes(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would survive the rename
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
