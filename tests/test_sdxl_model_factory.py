"""The generated SDXL-family model holds the same weights in all three files, and the SDXL
diffusers -> LDM UNet mapping the loaders use reproduces model_factory's LDM UNet exactly."""
import pytest
import torch
from conftest import MODEL_CACHE
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from harness.model_factory import build_sdxl_ip2p_unet, randomise_
from harness.sdxl_model_factory import (
    CLIP_G_PREFIX,
    build_sdxl_family,
    clip_g_config,
    openclip_text_state,
)
from ip2p_core.formats.diffusers_to_ldm import infer_unet_config, unet_to_ldm

UNET_PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def family():
    return build_sdxl_family(MODEL_CACHE)


def test_the_build_is_cached(family):
    written = family.cosxl_checkpoint.stat()
    assert build_sdxl_family(MODEL_CACHE) == family
    hit = family.cosxl_checkpoint.stat()
    assert (hit.st_ino, hit.st_mtime_ns) == (written.st_ino, written.st_mtime_ns), "a cache hit rebuilt the model"


def test_diffusers_unet_maps_to_the_checkpoint_unet_and_model_factory_unet(family):
    diffusers = load_file(str(family.diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    assert "add_embedding.linear_1.weight" in diffusers  # SDXL's addition embedding
    mapped = unet_to_ldm(diffusers, infer_unet_config(diffusers.keys()))
    unet_only = load_file(str(build_sdxl_ip2p_unet(MODEL_CACHE).unet))
    assert mapped.keys() == {UNET_PREFIX + k for k in unet_only}
    with safe_open(str(family.sdxl_checkpoint), framework="pt") as checkpoint:
        assert {k for k in checkpoint.keys() if k.startswith(UNET_PREFIX)} == mapped.keys()
        for key, value in mapped.items():
            assert torch.equal(value, unet_only[key[len(UNET_PREFIX):]]), key
            assert torch.equal(value, checkpoint.get_tensor(key)), key


def test_unknown_addition_embedding_key_is_refused():
    with pytest.raises(KeyError, match="add_embedding.linear_3.weight"):
        unet_to_ldm({"add_embedding.linear_3.weight": torch.zeros(1)}, infer_unet_config(["down_blocks.0.resnets.0.x"]))


def test_cosxl_checkpoint_is_the_sdxl_one_plus_the_edm_keys(family):
    with safe_open(str(family.sdxl_checkpoint), framework="pt") as eps, \
            safe_open(str(family.cosxl_checkpoint), framework="pt") as edm:
        assert set(edm.keys()) - set(eps.keys()) == {"edm_vpred.sigma_min", "edm_vpred.sigma_max"}
        assert set(eps.keys()) <= set(edm.keys())
        assert float(edm.get_tensor("edm_vpred.sigma_max")) == 120.0
        key = CLIP_G_PREFIX + "transformer.resblocks.31.attn.in_proj_weight"  # full-size CLIP-G: 32 layers
        assert eps.get_slice(key).get_shape() == [3 * 1280, 1280]
        assert torch.equal(edm.get_tensor(key), eps.get_tensor(key))


def test_openclip_layout_holds_exactly_the_hf_weights():
    """Undone the way ComfyUI reads SDXL checkpoints: in_proj split in thirds, the projection transposed."""
    config = CLIPTextConfig(**{**clip_g_config(), "num_hidden_layers": 2, "hidden_size": 64,
                               "intermediate_size": 128, "num_attention_heads": 2, "projection_dim": 32})
    model = CLIPTextModelWithProjection(config)
    randomise_(model, 1)
    hf = model.state_dict()
    openclip = openclip_text_state(hf)
    assert torch.equal(openclip["text_projection"].t(), hf["text_projection.weight"])
    assert torch.equal(openclip["positional_embedding"], hf["text_model.embeddings.position_embedding.weight"])
    for layer in range(2):
        q, k, v = openclip[f"transformer.resblocks.{layer}.attn.in_proj_weight"].chunk(3)
        for name, part in zip("qkv", (q, k, v)):
            assert torch.equal(part, hf[f"text_model.encoder.layers.{layer}.self_attn.{name}_proj.weight"])
        assert torch.equal(openclip[f"transformer.resblocks.{layer}.mlp.c_fc.bias"],
                           hf[f"text_model.encoder.layers.{layer}.mlp.fc1.bias"])
    weights = sum(v.numel() for k, v in hf.items() if not k.endswith("position_ids"))
    assert sum(v.numel() for k, v in openclip.items() if k != "logit_scale") == weights


def test_clip_g_middle_layers_pass_their_input_on_and_the_outer_ones_are_random(family):
    with safe_open(str(family.diffusers_dir / "text_encoder_2" / "model.safetensors"), framework="pt") as f:
        for layer in (0, 1, 2, 29, 30, 31):
            weight = f.get_tensor(f"text_model.encoder.layers.{layer}.mlp.fc2.weight")
            assert bool(weight.any()) == (layer in (0, 30, 31)), layer
            assert f.get_tensor(f"text_model.encoder.layers.{layer}.layer_norm1.weight").any()
