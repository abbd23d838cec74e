"""Keeps the demo model's recipe (python -m training.demo_recipe) working: every stage on a handful of pairs.

Learning is not asserted here (two steps cannot show it); the shipped model's numbers are in
benchmarks/RESULTS.md. This checks that the stages connect, resume, and end in a packed model
that expands into the SD1.5 single-file layout ComfyUI detects.
"""
import json
import subprocess
import sys
from dataclasses import asdict

import pytest
from conftest import REPO

from ip2p_core import demo_model
from training.demo_recipe import QUICK

pytestmark = pytest.mark.slow

COMMAND = [sys.executable, "-m", "training.demo_recipe", "--quick"]


def test_quick_run_packs_a_model_and_resumes(big_temporary_turn, tmp_path):  # about 1.2 GB of work files
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
    # What only resumed a finished stage, and single files nothing reads, are not kept.
    assert not (work / "run" / "checkpoints").exists() and not (work / "base").exists()
    assert not list(work.rglob("run.safetensors"))
    assert not list(work.rglob("binding.safetensors"))
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
    made_by = json.loads((models / demo_model.RECORD_NAME).read_text())["made_by"]
    assert made_by["steps"] == {"first": QUICK.train_steps, "binding": 3}
    assert made_by["settings"] == {**json.loads(json.dumps(asdict(QUICK))), "binding_steps": 3}
    assert made_by["command"] == "python -m training.demo_recipe --work WORK" and made_by["commits"]
    assert made_by["first_phase_expanded_sha256"] == demo_model.read_record(work / "first")["expanded_sha256"]
    # The run's checkpoints, scored on the validation pairs as the shipped one is chosen.
    scored = subprocess.run([sys.executable, "-m", "benchmarks.demo_validation", "--run", str(work / "binding"),
                             "--start", str(work / "first.safetensors"), "--pairs", "2",
                             "--json", str(tmp_path / "validation.json")],
                            capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert scored.returncode == 0, scored.stderr[-3000:]
    report = json.loads((tmp_path / "validation.json").read_text())
    assert set(report["models"]) == {"step 3 (EMA), euler", "step 3 (EMA), euler_ancestral"}
    assert "| step 3 (EMA), euler |" in scored.stdout
    full = subprocess.run([sys.executable, "-m", "training.demo_recipe", "--work", str(work), "--models", str(models)],
                          capture_output=True, text=True, timeout=1200, cwd=REPO)
    assert full.returncode != 0 and "holds a run of another recipe" in full.stderr
