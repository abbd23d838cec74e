"""Per model family, the image latent the UNet actually receives from IP2P Encode + IP2P Sampler.

IP2P UNets take 8 input channels: the noisy latent, then the input image's latent. SD1.5
IP2P and diffusers' SDXL IP2P were trained on the *unscaled* VAE latent (distribution mode),
CosXL Edit (SDXL, EDM v-prediction) on the latent scaled by SDXL's 0.13025. The pack attaches
the raw latent and leaves the family's convention to ComfyUI's IP2P model class, so this
checks the whole chain on models ComfyUI itself detects as each family: the tiny SD1.5 IP2P
checkpoint, and tiny SDXL-shaped UNet-only files (`model_factory.build_sdxl_ip2p_unet`) as
SDXL IP2P (EPS) and as CosXL Edit (with the `edm_vpred.*` keys), loaded with ComfyUI's own
UNET loader. These UNet-only tests get seeded SDXL-shaped conditionings from a probe node
(whole SDXL checkpoints with a generated CLIP-G are tested in test_host_sdxl.py); their VAE is the tiny SD1.5 model's (the same architecture
as SDXL's: the family's scaling comes from the model's latent format, not from the VAE).

A probe node (tests/probe_pack) reports what the host built and wraps the model: every UNet
call records the tensor the UNet's first conv receives. Its channels 4-7 are compared with
the input image's latent computed independently by diffusers' AutoencoderKL (same VAE
weights, posterior mode): the host's and diffusers' fp32 encoders agree to about 1e-5 of the
latent's largest value (see LATENT_RTOL), while the two conventions differ by a factor of 7.7.
"""
import json

import numpy as np
import pytest
import torch
from conftest import IP2P_CKPT, MODEL_CACHE, REPO
from PIL import Image
from reference import relative_diff
from safetensors import safe_open

from harness.model_factory import COSXL_SIGMA_MAX, COSXL_SIGMA_MIN, SDXL_UNET_SEED, build_sdxl_ip2p_unet, randomise_

SQUARE_IMAGE = "family_square.png"  # 64x64: latent 8x8, divisible by 4 for SDXL's three levels
SDXL_UNET = "tiny_sdxl_ip2p_unet.safetensors"
COSXL_UNET = "tiny_cosxl_edit_unet.safetensors"
SDXL_SCALE = 0.13025
STEPS = 2
# Image rows of the UNet input against diffusers' encode, relative to the latent's largest value:
# room for fp32 rounding in the VAE encoder's kernels, far below what a wrong scale (x0.13025) changes.
LATENT_RTOL = 5e-5

FAMILIES = {
    # family: detected model class, model type, sampling classes, latent format,
    # factor on the VAE latent in channels 4-7, sigma range (None: the host's default)
    "sd15_ip2p": ("SD15_instructpix2pix", "EPS", {"ModelSamplingDiscrete", "EPS"}, "SD15", 1.0, None),
    "sdxl_ip2p": ("SDXL_instructpix2pix", "EPS", {"ModelSamplingDiscrete", "EPS"}, "SDXL", 1.0, None),
    "cosxl_edit": ("SDXL_instructpix2pix", "V_PREDICTION_EDM", {"ModelSamplingContinuousEDM", "V_PREDICTION"},
                   "SDXL", SDXL_SCALE, (COSXL_SIGMA_MIN, COSXL_SIGMA_MAX)),
}


@pytest.fixture(scope="module")
def family_files(host, tmp_path_factory):
    """The SDXL-family UNets in models/unet (upstream lists that folder under diffusion_models too)
    and a square test image."""
    sdxl, cosxl = build_sdxl_ip2p_unet(MODEL_CACHE), build_sdxl_ip2p_unet(MODEL_CACHE, edm=True)
    host.add_model("unet", sdxl.unet, SDXL_UNET)
    host.add_model("unet", cosxl.unet, COSXL_UNET)
    image = tmp_path_factory.mktemp("family_images") / SQUARE_IMAGE
    Image.open(REPO / "examples" / "landscape.png").convert("RGB").resize((64, 64), Image.LANCZOS).save(image)
    host.add_input(image)
    return {"sd15_ip2p": None, "sdxl_ip2p": sdxl.unet, "cosxl_edit": cosxl.unet, "image": image}


@pytest.fixture(scope="module")
def vae_latent(tiny_ip2p, family_files):
    """The square image's VAE latent (posterior mode, unscaled), by diffusers on the same VAE weights."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tiny_ip2p.diffusers_dir / "vae", torch_dtype=torch.float32).eval()
    pixels = np.asarray(Image.open(family_files["image"]).convert("RGB"), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(pixels).permute(2, 0, 1)[None] * 2.0 - 1.0
    with torch.no_grad():
        return vae.encode(pixels).latent_dist.mode()


def family_graph(host, family: str, record: str, seed: int = 5) -> dict:
    """Model for `family`, IP2P Encode of the square image, the recording probe, IP2P Sampler,
    then the latent saved and the edit decoded and saved."""
    if family == "sd15_ip2p":
        nodes = {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": IP2P_CKPT}},
                 "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "make it snowy"}},
                 "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}}}
        vae = ["1", 2]
    else:
        loader = {"unet_name": SDXL_UNET if family == "sdxl_ip2p" else COSXL_UNET}
        if "weight_dtype" in host.object_info("UNETLoader")["input"]["required"]:  # upstream only
            loader["weight_dtype"] = "default"
        nodes = {"1": {"class_type": "UNETLoader", "inputs": loader},
                 "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": IP2P_CKPT}},
                 "3": {"class_type": "IP2PTestSDXLConditioning", "inputs": {"seed": 1, "width": 64, "height": 64}},
                 "4": {"class_type": "IP2PTestSDXLConditioning", "inputs": {"seed": 2, "width": 64, "height": 64}}}
        vae = ["2", 2]
    return {
        **nodes,
        "5": {"class_type": "LoadImage", "inputs": {"image": SQUARE_IMAGE}},
        "6": {"class_type": "IP2PTestRecordUNetInput", "inputs": {"model": ["1", 0], "path": record}},
        "7": {"class_type": "IP2PEncode", "inputs": {"positive": ["3", 0], "negative": ["4", 0], "vae": vae,
                                                     "image": ["5", 0]}},
        "8": {"class_type": "IP2PSampler", "inputs": {
            "model": ["6", 0], "positive": ["7", 0], "negative": ["7", 1], "seed": seed, "steps": STEPS,
            "text_cfg": 7.5, "image_cfg": 1.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "9": {"class_type": "SaveLatent", "inputs": {"samples": ["8", 0], "filename_prefix": f"family_{family}"}},
        "10": {"class_type": "IP2PDecode", "inputs": {"samples": ["8", 0], "vae": vae}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": f"family_{family}"}},
    }


@pytest.fixture(scope="module")
def family_runs(host, family_files, tmp_path_factory):
    """Each family's edit, run once: (probe report, recorded UNet calls, output files)."""
    runs = {}

    def run(family):
        if family not in runs:
            record = str(tmp_path_factory.mktemp(f"record_{family}") / "unet")
            outputs = host.run(family_graph(host, family, record))
            with open(record + ".json") as f:
                report = json.load(f)
            runs[family] = (report, torch.load(record + ".calls.pt"), host.output_files(outputs))
        return runs[family]
    return run


@pytest.mark.host
@pytest.mark.parametrize("family", list(FAMILIES))
def test_comfyui_detects_the_family(host, family_runs, family_files, tiny_ip2p, family):
    model_class, model_type, sampling, latent_format, _, sigmas = FAMILIES[family]
    report, _, _ = family_runs(family)
    assert (report["model_class"], report["config_class"], report["model_type"], report["latent_format"]) == (
        model_class, model_class, model_type, latent_format)
    assert sampling <= set(report["model_sampling"])
    assert report["unet_config"]["in_channels"] == 8
    if sigmas is not None:
        assert report["sigma_min"] == pytest.approx(sigmas[0], rel=1e-4)
        assert report["sigma_max"] == pytest.approx(sigmas[1], rel=1e-4)
        assert report["sigma_data"] == 1.0
    # The host built exactly the file's UNet: no weight missing, none left over.
    if family == "sd15_ip2p":
        path, prefix = tiny_ip2p.checkpoint, "model.diffusion_model."
    else:
        path, prefix = family_files[family], ""
    with safe_open(str(path), framework="pt") as f:
        stored = {k[len(prefix):]: list(f.get_slice(k).get_shape()) for k in f.keys()
                  if k.startswith(prefix) and not k.startswith("edm_vpred.")}
    assert report["weights"] == stored


@pytest.mark.host
@pytest.mark.parametrize("family", list(FAMILIES))
def test_unet_receives_the_family_image_latent(family_runs, vae_latent, family):
    factor = FAMILIES[family][4]
    expected = vae_latent * factor
    other = vae_latent * (SDXL_SCALE if factor == 1.0 else 1.0)  # the other convention
    _, calls, _ = family_runs(family)
    image_rows = zero_rows = 0
    for call in calls:
        unet_input = call["unet_input"]
        assert unet_input.shape[1] == 8
        # What the UNet's first conv sees in channels 4-7 is exactly what the host concatenated.
        assert torch.equal(unet_input[:, 4:], call["c_concat"].to(unet_input))
        for row in unet_input[:, 4:].float():
            if not row.any():
                zero_rows += 1  # the unconditional prediction: no image
                continue
            image_rows += 1
            assert relative_diff(row[None], expected) < LATENT_RTOL
            assert relative_diff(row[None], other) > 0.5
    # Per step: instruction + image, image only (both carry the image), and neither.
    assert (image_rows, zero_rows) == (2 * STEPS, STEPS)


@pytest.mark.host
@pytest.mark.parametrize("family", list(FAMILIES))
def test_edit_runs_at_the_family_sigmas_and_is_finite(family_runs, family):
    report, calls, files = family_runs(family)
    sigmas = sorted({round(float(s), 4) for call in calls for s in call["sigma"]}, reverse=True)
    assert len(sigmas) == STEPS
    assert sigmas[0] == pytest.approx(report["sigma_max"], rel=1e-4)  # full denoise starts at sigma_max
    assert all(call["output_finite"] for call in calls)
    (latent_file,) = [p for p in files if p.suffix == ".latent"]
    with safe_open(str(latent_file), framework="pt") as f:
        latent = f.get_tensor("latent_tensor")
    assert latent.shape == (1, 4, 8, 8) and torch.isfinite(latent).all()
    (image_file,) = [p for p in files if p.suffix == ".png"]
    assert Image.open(image_file).size == (64, 64)


# -- the generated SDXL-family files themselves (no host) ---------------------------------------


def test_sdxl_family_files_are_cached_deterministic_and_differ_only_in_the_edm_keys():
    sdxl, cosxl = build_sdxl_ip2p_unet(MODEL_CACHE), build_sdxl_ip2p_unet(MODEL_CACHE, edm=True)
    written = sdxl.unet.stat()
    again = build_sdxl_ip2p_unet(MODEL_CACHE).unet.stat()
    assert (again.st_ino, again.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), "a cache hit rebuilt the model"
    # The same seeded draw per weight name as the build (diffusers names, before the LDM mapping).
    regenerated = torch.nn.Module()
    regenerated.conv_in = torch.nn.Conv2d(8, 320, 3)
    regenerated.add_embedding = torch.nn.Module()
    regenerated.add_embedding.linear_1 = torch.nn.Linear(2816, 1280)
    randomise_(regenerated, SDXL_UNET_SEED)
    with safe_open(str(sdxl.unet), framework="pt") as eps, safe_open(str(cosxl.unet), framework="pt") as edm:
        assert set(edm.keys()) - set(eps.keys()) == {"edm_vpred.sigma_min", "edm_vpred.sigma_max"}
        assert set(eps.keys()) <= set(edm.keys()) and not any(k.startswith("model.") for k in eps.keys())
        assert float(edm.get_tensor("edm_vpred.sigma_max")) == COSXL_SIGMA_MAX
        assert float(edm.get_tensor("edm_vpred.sigma_min")) == pytest.approx(COSXL_SIGMA_MIN)
        regenerated_as = {"input_blocks.0.0": regenerated.conv_in, "label_emb.0.0": regenerated.add_embedding.linear_1}
        for name, module in regenerated_as.items():
            for param in ("weight", "bias"):
                stored = eps.get_tensor(f"{name}.{param}")
                assert stored.dtype == torch.float16
                assert torch.equal(stored, getattr(module, param).detach().to(torch.float16))
                assert torch.equal(edm.get_tensor(f"{name}.{param}"), stored)


@pytest.mark.host
def test_pack_unet_loader_keeps_cosxl_from_a_prefixed_unet_file(host, family_files, tmp_path):
    """A UNet-only file cut from a checkpoint keeps `model.diffusion_model.`; the hosts' own
    prefix stripping drops `edm_vpred.*` with it and loads CosXL as EPS. The pack's loader must not."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(family_files["cosxl_edit"]))
    prefixed = {(k if k.startswith("edm_vpred.") else "model.diffusion_model." + k): v for k, v in weights.items()}
    save_file(prefixed, str(tmp_path / "cosxl_prefixed.safetensors"))
    name = host.add_model("unet", tmp_path / "cosxl_prefixed.safetensors")
    host.object_info(refresh=True)
    record = str(tmp_path / "unet")
    graph = family_graph(host, "cosxl_edit", record)
    graph["1"] = {"class_type": "IP2PUNetLoader", "inputs": {"unet_name": name}}
    try:
        host.run(graph)
    finally:
        host.remove_model("unet", name, delete_target=True)  # a 256 MB copy
    with open(record + ".json") as f:
        report = json.load(f)
    assert (report["model_class"], report["model_type"]) == ("SDXL_instructpix2pix", "V_PREDICTION_EDM")
    assert report["sigma_max"] == pytest.approx(COSXL_SIGMA_MAX, rel=1e-4)
