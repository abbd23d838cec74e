import json

import pytest

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.diffusers_folder import find_parts


def make_folder(root, parts=("unet", "vae", "text_encoder"), weights=True, sdxl=False):
    (root / "model_index.json").write_text("{}")
    for part in parts:
        (root / part).mkdir()
        if weights:
            name = "model.safetensors" if part.startswith("text_encoder") else "diffusion_pytorch_model.safetensors"
            (root / part / name).write_bytes(b"")
    if "unet" in parts:
        (root / "unet" / "config.json").write_text(json.dumps({"addition_embed_type": "text_time" if sdxl else None}))
    return root


def test_sd15_folder_parts_are_found(tmp_path):
    parts = find_parts(make_folder(tmp_path))
    assert parts.denoiser.name == "diffusion_pytorch_model.safetensors" and len(parts.text_encoders) == 1
    assert not parts.is_sdxl


def test_sdxl_folder_has_two_text_encoders(tmp_path):
    parts = find_parts(make_folder(tmp_path, ("unet", "vae", "text_encoder", "text_encoder_2"), sdxl=True))
    assert [p.parent.name for p in parts.text_encoders] == ["text_encoder", "text_encoder_2"] and parts.is_sdxl


def test_sdxl_folder_without_clip_g_names_text_encoder_2(tmp_path):
    with pytest.raises(IP2PUserError, match=r"has no text_encoder_2/ subfolder.*an SDXL model needs unet/, vae/, "
                                            r"text_encoder/ and text_encoder_2/"):
        find_parts(make_folder(tmp_path, sdxl=True))


def test_folder_without_model_index_says_what_layout_is_expected(tmp_path):
    with pytest.raises(IP2PUserError, match="has no model_index.json.*unet/, vae/, text_encoder/"):
        find_parts(tmp_path)


def test_missing_subfolder_is_named(tmp_path):
    with pytest.raises(IP2PUserError, match="has no vae/ subfolder"):
        find_parts(make_folder(tmp_path, ("unet", "text_encoder")))


def test_missing_weights_and_shards_are_named(tmp_path):
    folder = make_folder(tmp_path, weights=False)
    with pytest.raises(IP2PUserError, match="unet has no weights file"):
        find_parts(folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors.index.json").write_text("{}")
    with pytest.raises(IP2PUserError, match="unet holds sharded weights"):
        find_parts(folder)


def make_sd3_folder(root, parts=("transformer", "vae", "text_encoder", "text_encoder_2")):
    make_folder(root, parts)
    if "transformer" in parts:
        (root / "transformer" / "config.json").write_text(json.dumps({"in_channels": 48}))
    return root


def test_sd3_folder_has_a_transformer_and_its_t5_when_present(tmp_path):
    parts = find_parts(make_sd3_folder(tmp_path))
    assert parts.is_sd3 and not parts.is_sdxl and parts.denoiser.parent.name == "transformer"
    assert [p.parent.name for p in parts.text_encoders] == ["text_encoder", "text_encoder_2"]
    (tmp_path / "with_t5").mkdir()
    with_t5 = make_sd3_folder(tmp_path / "with_t5", ("transformer", "vae", "text_encoder", "text_encoder_2",
                                                     "text_encoder_3"))
    assert [p.parent.name for p in find_parts(with_t5).text_encoders][-1] == "text_encoder_3"


def test_sd3_folder_without_clip_g_names_what_an_sd3_model_needs(tmp_path):
    with pytest.raises(IP2PUserError, match=r"has no text_encoder_2/ subfolder.*an SD3 model needs transformer/, "
                                            r"vae/, text_encoder/ and text_encoder_2/"):
        find_parts(make_sd3_folder(tmp_path, ("transformer", "vae", "text_encoder")))
