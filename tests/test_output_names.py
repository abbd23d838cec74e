"""Result names never replace an earlier result, in both naming styles."""
from ip2p_core.output_names import free_path


def test_plain_name_first_then_numbered(tmp_path):
    assert free_path(tmp_path, "cat_edited", ".png") == tmp_path / "cat_edited.png"
    (tmp_path / "cat_edited.png").touch()
    (tmp_path / "cat_edited_1.png").touch()
    assert free_path(tmp_path, "cat_edited", ".png") == tmp_path / "cat_edited_2.png"


def test_always_numbered_as_comfyui_saves(tmp_path):
    assert free_path(tmp_path, "model", ".safetensors", always_numbered=True) == tmp_path / "model_00001.safetensors"
    (tmp_path / "model_00001.safetensors").touch()
    (tmp_path / "model.safetensors").touch()
    assert free_path(tmp_path, "model", ".safetensors", always_numbered=True) == tmp_path / "model_00002.safetensors"
