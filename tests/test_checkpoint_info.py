import os

import pytest
import torch
from safetensors.torch import save_file

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.checkpoint_info import read_tensor_shapes, require_ip2p_unet, unet_shape
from ip2p_core.formats.latents import Family

LDM_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
LDM_ATTN2 = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"


def fake_unet(in_channels=8, context=768, **extra):
    return {LDM_CONV_IN: torch.zeros(320, in_channels, 3, 3), LDM_ATTN2: torch.zeros(320, context), **extra}


def test_ip2p_safetensors_is_read_from_the_header(tmp_path):
    path = tmp_path / "ip2p.safetensors"
    save_file(fake_unet(), str(path))
    shape = require_ip2p_unet(path)
    assert (shape.in_channels, shape.context_dim, shape.family) == (8, 768, Family.SD15)


def test_ckpt_with_state_dict_wrapper_is_read(tmp_path):
    path = tmp_path / "ip2p.ckpt"
    torch.save({"state_dict": fake_unet(), "global_step": 22000}, path)
    assert require_ip2p_unet(path).in_channels == 8


@pytest.mark.parametrize("keys, family", [
    ({"conv_in.weight": (320, 8, 3, 3), "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": (640, 2048)},
     Family.SDXL),
    ({"input_blocks.0.0.weight": (320, 8, 3, 3), "x.attn2.to_k.weight": (640, 2048), "edm_vpred.sigma_max": ()},
     Family.COSXL),
])
def test_family_is_told_from_context_width_and_edm_marker(keys, family):
    assert unet_shape(keys, "m").family == family


def test_four_channel_model_is_refused_with_what_to_use_instead(tmp_path):
    path = tmp_path / "v1-5-pruned.safetensors"
    save_file(fake_unet(in_channels=4), str(path))
    with pytest.raises(IP2PUserError, match=r"v1-5-pruned.safetensors is not an InstructPix2Pix model: it is an "
                                            r"ordinary text-to-image model \(4 input channels\)\. Use ComfyUI's Load Checkpoint"):
        require_ip2p_unet(path)


def test_inpainting_model_is_named_as_such(tmp_path):
    path = tmp_path / "inpaint.safetensors"
    save_file(fake_unet(in_channels=9), str(path))
    with pytest.raises(IP2PUserError, match="inpainting model"):
        require_ip2p_unet(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(IP2PUserError, match="checkpoint file not found: .*nothing.safetensors"):
        read_tensor_shapes(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize("name, content", [
    ("garbage.safetensors", b"\xff" * 64),
    ("truncated.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"),
    ("garbage.ckpt", b"not a pickle at all"),
])
def test_corrupt_file_says_damaged(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IP2PUserError, match=f"cannot read checkpoint {name}: the file is damaged"):
        read_tensor_shapes(path)


def test_file_without_unet_says_what_it_may_be(tmp_path):
    path = tmp_path / "vae.safetensors"
    save_file({"encoder.conv_in.weight": torch.zeros(128, 3, 3, 3)}, str(path))
    with pytest.raises(IP2PUserError, match="has no UNet or SD3 transformer weights.*a VAE, a LoRA or a text encoder"):
        require_ip2p_unet(path)


class _RunsCode:
    """Unpickling this calls os.makedirs: what a malicious .ckpt does with worse calls."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_pickle_that_would_run_code_is_not_unpickled(tmp_path):
    path, marker = tmp_path / "evil.ckpt", tmp_path / "code-ran"
    torch.save({"state_dict": {**fake_unet(), "payload": _RunsCode(marker)}}, path)
    with pytest.raises(IP2PUserError, match=r"evil.ckpt is a pickle holding Python objects besides model weights: "
                                            r"unpickling them could run code stored in the file, so it was not loaded"):
        require_ip2p_unet(path)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["model.diffusion_model.x_embedder.proj.weight", "x_embedder.proj.weight",
                                 "pos_embed.proj.weight"])
@pytest.mark.parametrize("in_channels", [32, 48])
def test_ultraedit_transformers_are_taken_in_every_layout(tmp_path, key, in_channels):
    path = tmp_path / "ultraedit.safetensors"
    save_file({key: torch.zeros(1536, in_channels, 2, 2)}, str(path))
    shape = require_ip2p_unet(path)
    assert (shape.in_channels, shape.family, shape.transformer) == (in_channels, Family.ULTRAEDIT, True)


def test_sd3_text_to_image_transformer_is_refused_with_what_to_use_instead(tmp_path):
    path = tmp_path / "sd3_medium.safetensors"
    save_file({"model.diffusion_model.x_embedder.proj.weight": torch.zeros(1536, 16, 2, 2)}, str(path))
    with pytest.raises(IP2PUserError, match=r"sd3_medium.safetensors is not an instruction-editing model: it is an "
                                            r"ordinary SD3 text-to-image model \(16 input channels\)\. Use ComfyUI's "
                                            r"Load Checkpoint node for it, or load an UltraEdit model"):
        require_ip2p_unet(path)
