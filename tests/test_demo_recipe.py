"""Which runs a demo recipe --work folder may be resumed with (no training here)."""
import json
from dataclasses import asdict, replace

import pytest

from training.demo_recipe import QUICK, Recipe, _same_recipe


def test_more_steps_and_another_checkpoint_count_resume_the_same_folder(tmp_path):
    _same_recipe(tmp_path, QUICK)
    _same_recipe(tmp_path, replace(QUICK, binding_steps=3, keep_checkpoints=2))
    assert json.loads((tmp_path / "recipe.json").read_text())["binding_steps"] == 3


def test_a_folder_from_before_keep_checkpoints_resumes(tmp_path):
    older = {k: v for k, v in asdict(Recipe()).items() if k != "keep_checkpoints"}
    (tmp_path / "recipe.json").write_text(json.dumps(older))
    _same_recipe(tmp_path, Recipe())


def test_another_recipe_is_refused(tmp_path):
    _same_recipe(tmp_path, QUICK)
    with pytest.raises(SystemExit, match="holds a run of another recipe .*use a new --work folder"):
        _same_recipe(tmp_path, replace(QUICK, learning_rate=2e-4))
    with pytest.raises(SystemExit, match="holds a run of another recipe"):  # the first phase's steps make its model
        _same_recipe(tmp_path, replace(QUICK, train_steps=3))
    with pytest.raises(SystemExit, match="holds a run of another recipe"):
        _same_recipe(tmp_path, replace(QUICK, binding_kind_weights={"recolor": 1.0}))
