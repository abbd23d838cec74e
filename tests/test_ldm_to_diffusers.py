"""Single-file SD1.x checkpoints read back into diffusers modules: the same weights as the diffusers twin."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from ip2p_core.errors import IP2PUserError
from ip2p_core.training.trainable_model import comfy_tokenizer_dir, load_model


@pytest.mark.slow
def test_single_file_gives_the_diffusers_folder_weights(tiny_sd):
    from_file = load_model(tiny_sd.checkpoint, comfy_tokenizer_dir())
    from_folder = load_model(tiny_sd.diffusers_dir)
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(from_file, part).state_dict(), getattr(from_folder, part).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k].float(), b[k].float()) for k in a), part
    assert from_file.unet.config.in_channels == 8  # widened on load, as from the folder


def test_single_file_without_tokenizer_says_where_to_get_one(tiny_sd):
    with pytest.raises(IP2PUserError, match="holds no tokenizer: pass --tokenizer"):
        load_model(tiny_sd.checkpoint)


def test_non_sd1_single_file_is_refused(tiny_sd, tmp_path):
    state = load_file(str(tiny_sd.checkpoint))
    key = next(k for k in state if k.endswith("attn2.to_k.weight"))
    state[key] = torch.zeros(state[key].shape[0], 1024)
    save_file(state, str(tmp_path / "sd2.safetensors"))
    with pytest.raises(IP2PUserError, match=r"sd2.safetensors is not an SD1.x model \(text width 1024\)"):
        load_model(tmp_path / "sd2.safetensors", comfy_tokenizer_dir())


def test_incomplete_single_file_names_the_missing_tensor(tiny_sd, tmp_path):
    state = load_file(str(tiny_sd.checkpoint))
    del state["model.diffusion_model.out.2.bias"]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(IP2PUserError, match=r"cut.safetensors lacks model.diffusion_model.out.2.bias"):
        load_model(tmp_path / "cut.safetensors", comfy_tokenizer_dir())
