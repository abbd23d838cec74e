"""ip2p_core.demo_model: the shipped weights are checked before they become a model; tools.demo_checkpoint
writes them out and deletes nothing it did not make.

A missing, truncated or altered file stops with a message; the expanded weights are checked
against the record too. Run on a small stand-in written the way the recipe writes the real one.
"""
import json
import re
import shutil
import subprocess
from dataclasses import asdict

import pytest
import torch
from conftest import REPO
from safetensors.torch import load_file

from benchmarks.demo_quality import STEPS
from ip2p_core import demo_model
from ip2p_core.errors import IP2PUserError
from tools.demo_checkpoint import checkpoint_file, main
from training.demo_packing import write_shipped
from training.demo_recipe import COMMAND, Recipe
from training.synthetic_shapes import EDIT_KINDS, SPLIT_SEEDS

UNET = "model.diffusion_model."
TEXT = "cond_stage_model.transformer.text_model."


@pytest.fixture
def shipped(tmp_path):
    generator = torch.Generator().manual_seed(0)
    state = {f"{UNET}input_blocks.0.0.weight": torch.randn(320, 8, 3, 3, generator=generator),
             f"{UNET}out.2.bias": torch.randn(4, generator=generator),
             "first_stage_model.taesd_decoder.1.weight": torch.randn(64, 4, 3, 3, generator=generator).half(),
             "first_stage_model.vae_scale": torch.tensor(0.18215),
             f"{TEXT}final_layer_norm.weight": torch.ones(768, dtype=torch.float16),
             f"{TEXT}encoder.layers.0.mlp.fc2.weight": torch.zeros(768, 3072, dtype=torch.float16)}
    folder = tmp_path / "models"
    write_shipped(state, folder)
    return folder, state


def test_expands_to_the_packed_state(shipped):
    folder, state = shipped
    expanded = demo_model.load_state_dict(folder)
    assert set(expanded) == set(state)
    for key in state:
        if key.endswith("input_blocks.0.0.weight"):  # the UNet's matrices ship as int8 rows
            assert (expanded[key] - state[key]).abs().max() < state[key].abs().max() / 127
        else:
            assert torch.equal(expanded[key], state[key]), key


def test_written_checkpoint_is_an_ordinary_file_keyed_by_version(shipped, tmp_path):
    folder, _ = shipped
    path = checkpoint_file(tmp_path / "cache", folder)
    assert path.name == demo_model.CHECKPOINT_NAME
    assert set(load_file(str(path))) == set(demo_model.load_state_dict(folder))
    assert checkpoint_file(tmp_path / "cache", folder) == path


def test_a_new_version_removes_only_the_folders_the_tool_made(shipped, tmp_path):
    """Pointed at a folder of the user's own models, the tool adds its version folder and deletes
    nothing of theirs, not even a copy of the demo file; its own older version folder goes."""
    folder, state = shipped
    models = tmp_path / "ComfyUI" / "models"
    old = checkpoint_file(models, folder).parent
    (old / "derived.safetensors").write_bytes(b"written into the tool's folder by the tests' harness")
    users = {models / "checkpoints" / demo_model.CHECKPOINT_NAME: b"the user's copy of the demo model",
             models / "checkpoints" / "their_model.safetensors": b"the user's model",
             models / "0123456789abcdef" / demo_model.CHECKPOINT_NAME: b"a folder named like a version"}
    for path, data in users.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    write_shipped({**state, "first_stage_model.vae_scale": torch.tensor(0.5)}, folder)  # the next version
    main([str(models)])
    new = checkpoint_file(models, folder)
    assert new.parent != old and new.is_file() and not old.exists()
    assert {path: path.read_bytes() for path in users} == users


def test_missing_weights_file_is_named(shipped):
    folder, _ = shipped
    (folder / demo_model.COMPACT_NAME).unlink()
    with pytest.raises(IP2PUserError, match="the demo model's weights are missing: .* not found. Restore"):
        demo_model.load_state_dict(folder)


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_damaged_weights_file_is_refused(shipped, damage):
    folder, _ = shipped
    path = folder / demo_model.COMPACT_NAME
    data = bytearray(path.read_bytes())
    path.write_bytes(data[:len(data) // 2] if damage == "truncated" else data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(IP2PUserError, match=r"the demo model's weights in .* are damaged or were changed"):
        demo_model.load_state_dict(folder)


def test_missing_record_and_mismatched_expansion_are_named(shipped, tmp_path):
    folder, _ = shipped
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    record = json.loads((copy / demo_model.RECORD_NAME).read_text())
    record["expanded_sha256"] = "0" * 64
    (copy / demo_model.RECORD_NAME).write_text(json.dumps(record))
    with pytest.raises(IP2PUserError, match="does not match its record"):
        demo_model.load_state_dict(copy)
    (folder / demo_model.RECORD_NAME).unlink()
    with pytest.raises(IP2PUserError, match="the demo model's record .* is missing"):
        demo_model.load_state_dict(folder)


def test_the_shipped_record_says_how_the_model_was_made_as_the_recipe_makes_it():
    """The record names the recipe's command, settings and steps, the commits the training ran from
    (committed code, in this repository) and the pack's figures on the test pairs."""
    record = demo_model.read_record(demo_model.MODELS_DIR)
    made_by, recipe = record["made_by"], Recipe()
    assert made_by["command"] == COMMAND
    assert made_by["settings"] == json.loads(json.dumps(asdict(recipe)))
    assert made_by["steps"] == {"first": recipe.train_steps, "binding": recipe.binding_steps}
    for commit in made_by["commits"]:
        assert re.fullmatch("[0-9a-f]{40}", commit), f"{commit}: the training ran from uncommitted code"
        if (REPO / ".git").exists():
            known = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True)
            assert known.returncode == 0, f"{commit} is no commit of this repository"
    figures = record["test_figures"]
    assert (figures["split"], figures["seed"], figures["steps"]) == ("test", SPLIT_SEEDS["test"], STEPS)
    for sampler in ("euler", "euler_ancestral"):
        assert set(EDIT_KINDS) <= set(figures["strict_success"][sampler]), sampler
