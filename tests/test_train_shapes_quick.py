"""Keeps the training proof (benchmarks/train_shapes.py) working: every stage on a handful of pairs.

Learning is not asserted here (a few steps cannot show it); the full run's numbers are in
benchmarks/RESULTS.md. This checks the stages connect and the report holds what it claims.
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_run_reports_every_baseline(tmp_path):
    work = tmp_path / "shapes"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_shapes.py"), "--quick", "--work", str(work)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((work / "report.json").read_text())
    assert 0 < report["identity_mse"] < 1 and 0 < report["untrained"]["mse"] < 1 and 0 < report["vae_floor_mse"] < 1
    assert [(t["text_cfg"], t["image_cfg"]) for t in report["trained"]] == [(1.0, 1.0), (7.5, 1.5)]
    assert all(0 < t["mse"] < 1 for t in report["trained"])
    for row in ("input unchanged (identity)", "target through the VAE (floor)", "before training", "| trained | 7.5 | 1.5 |"):
        assert row in done.stdout
    assert (work / "run" / "diffusers" / "model_index.json").is_file() and (work / "run" / "run.safetensors").is_file()
