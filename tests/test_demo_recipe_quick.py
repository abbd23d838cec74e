"""Keeps the demo model's recipe (python -m training.demo_recipe) working: every stage on a handful of pairs.

Learning is not asserted here (two steps cannot show it); the shipped model's numbers are in
benchmarks/RESULTS.md. This checks that the stages connect, resume, and end in a packed model
that expands into the SD1.5 single-file layout ComfyUI detects.
"""
import json
import subprocess
import sys

import pytest
from conftest import REPO

from ip2p_core import demo_model

pytestmark = pytest.mark.slow

COMMAND = [sys.executable, "-m", "training.demo_recipe", "--quick"]


def test_quick_run_packs_a_model_and_resumes(big_temporary_turn, tmp_path):  # up to 2 GB of work files
    work, models = tmp_path / "work", tmp_path / "models"
    done = subprocess.run(COMMAND + ["--work", str(work), "--models", str(models)], capture_output=True, text=True,
                          timeout=1200, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((models / demo_model.RECORD_NAME).read_text())
    assert (models / record["compact_file"]).stat().st_size < 40 * 2**20
    state = demo_model.load_state_dict(models)
    assert state["model.diffusion_model.input_blocks.0.0.weight"].shape == (320, 8, 3, 3)
    assert state["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].shape == (49408, 768)
    assert "first_stage_model.taesd_decoder.1.weight" in state
    # A second run finds every stage done and packs the same model again.
    again = subprocess.run(COMMAND + ["--work", str(work), "--models", str(models)], capture_output=True, text=True,
                           timeout=1200, cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((models / demo_model.RECORD_NAME).read_text()) == record
    # More steps continue the training from its last checkpoint; another recipe is refused.
    longer = subprocess.run(COMMAND + ["--work", str(work), "--models", str(models), "--steps", "3"],
                            capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "resuming from" in longer.stderr and (work / "binding" / "checkpoints" / "step-00000003").is_dir()
    full = subprocess.run([sys.executable, "-m", "training.demo_recipe", "--work", str(work), "--models", str(models)],
                          capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert full.returncode != 0 and "holds a run of another recipe" in full.stderr
