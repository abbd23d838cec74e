"""Single-file SD1.x checkpoints read back into diffusers modules: the same weights as the diffusers twin.

The twins are a small random SD1.x (text width 768, 4 input channels): a diffusers folder, and
the same modules written out with the key map users' checkpoints follow (`ldm_checkpoint`), so
reading the file back meets the folder's own weights.
"""
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.small_sd import TEXT_ENCODER_CONFIG, UNET_CONFIG, VAE_CONFIG
from ip2p_core.errors import IP2PUserError
from training.ldm_checkpoint import ldm_checkpoint
from training.trainable_model import SD15_NOISE_SCHEDULE, comfy_tokenizer_dir, load_model

# SD1.x's 32 norm groups (what a single file's reader assumes), SD1.x's text width.
SD1_UNET = {**UNET_CONFIG, "cross_attention_dim": 768, "norm_num_groups": 32}
SD1_VAE = {**VAE_CONFIG, "block_out_channels": [32, 64, 64], "norm_num_groups": 32}
SD1_TEXT = {**TEXT_ENCODER_CONFIG, "hidden_size": 768, "projection_dim": 768, "num_attention_heads": 12,
            "num_hidden_layers": 1}


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """(the diffusers folder, the single file) of one small random SD1.x."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD1_UNET)
    vae, text_encoder = AutoencoderKL(**SD1_VAE), CLIPTextModel(CLIPTextConfig(**SD1_TEXT))
    folder = tmp_path_factory.mktemp("twins")
    StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=CLIPTokenizer.from_pretrained(str(comfy_tokenizer_dir())),
        unet=unet, scheduler=DDPMScheduler(**SD15_NOISE_SCHEDULE), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(folder / "diffusers", safe_serialization=True)
    state = ldm_checkpoint(unet.state_dict(), dict(unet.config), vae.state_dict(), dict(vae.config),
                           text_encoder.state_dict())
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "sd.safetensors"))
    yield folder / "diffusers", folder / "sd.safetensors"
    shutil.rmtree(folder)  # 330 MB (a full-width text encoder, twice), needed by this file only


@pytest.fixture(scope="module")
def sd_file(twins):
    return twins[1]


def test_single_file_gives_the_diffusers_folder_weights(twins):
    folder, single_file = twins
    from_file = load_model(single_file, comfy_tokenizer_dir())
    from_folder = load_model(folder)
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(from_file, part).state_dict(), getattr(from_folder, part).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k].float(), b[k].float()) for k in a), part
    assert from_file.unet.config.in_channels == 8  # widened on load, as from the folder


def test_single_file_without_tokenizer_says_where_to_get_one(sd_file):
    with pytest.raises(IP2PUserError, match="holds no tokenizer: pass --tokenizer"):
        load_model(sd_file)


def test_non_sd1_single_file_is_refused(sd_file, tmp_path):
    state = load_file(str(sd_file))
    key = next(k for k in state if k.endswith("attn2.to_k.weight"))
    state[key] = torch.zeros(state[key].shape[0], 1024)
    save_file(state, str(tmp_path / "sd2.safetensors"))
    with pytest.raises(IP2PUserError, match=r"sd2.safetensors is not an SD1.x model \(text width 1024\)"):
        load_model(tmp_path / "sd2.safetensors", comfy_tokenizer_dir())


def test_incomplete_single_file_names_the_missing_tensor(sd_file, tmp_path):
    state = load_file(str(sd_file))
    del state["model.diffusion_model.out.2.bias"]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(IP2PUserError, match=r"cut.safetensors lacks model.diffusion_model.out.2.bias"):
        load_model(tmp_path / "cut.safetensors", comfy_tokenizer_dir())
