"""Keeps benchmarks/bench_edit.py working: its --quick mode end to end (the demo model, 64 px, 1 step),
benchmarks/attention_kernels.py on one small size, and benchmarks/ultraedit_speed.py --quick.

No timing is asserted (the machine is shared and the tiny model says nothing about speed);
only that all three paths ran, each counted its UNet calls in the sampling loop (the hosts'
probe, the diffusers worker's hooks), the report was written, and the pack's edit is diffusers' edit.
"""
import json
import math
import re
import subprocess
import sys

import pytest
from conftest import MODEL_CACHE, REPO
from test_host_parity import DIFFUSERS_RTOL

pytestmark = pytest.mark.host


def test_quick_benchmark_runs_all_three_paths(tmp_path, demo):
    """--resident, the three processes up together, with an environment variable for the hosts
    (the order of the default mode, one process at a time, is checked in test_benchmark_args.py:
    both modes run the same start, edit and stop)."""
    report, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_edit", "--quick", "--cache", str(MODEL_CACHE),
         "--work-dir", str(tmp_path), "--out", str(report), "--json", str(raw), "--resident", "--host-env",
         "MALLOC_MMAP_MAX_=0"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    data = json.loads(raw.read_text())
    assert sorted(r["path"] for r in data["results"]) == ["diffusers", "native", "pack"]
    for result in data["results"]:
        assert result["steps"] == 1 and result["loop_seconds"] > 0 and result["whole_seconds"] >= result["loop_seconds"]
        assert result["peak_rss_mb"] > 0 and math.isfinite(result["peak_rss_mb"]) and result["page_faults"] >= 0
        # the three predictions of a step go to the UNet as one batch of 3, in every path: counted
        # inside each process, one [batch, seconds] per call
        assert [batch for batch, _ in result["model_calls"]] == [3] * result["steps"], result
        assert result["model_calls_per_step"] == 1 and result["batch"] == [3], result
        assert 0 < result["unet_seconds"] <= result["loop_seconds"], result
    (agreement,) = data["agreement"]
    pack_vs_diffusers = agreement["pack_vs_diffusers"]["latent"] / agreement["latent_max_abs"]
    assert pack_vs_diffusers < DIFFUSERS_RTOL, agreement
    text = report.read_text()
    assert "| 64 | 1 | pack |" in text and "## Do the outputs agree?" in text
    assert "Attention in the UNet: pack: PyTorch scaled_dot_product_attention, picked by the pack" in text
    assert "The three processes up together" in text and "environment `MALLOC_MMAP_MAX_=0`" in text
    assert not list(tmp_path.glob("ip2p-bench-*")), "the work folder was not removed"


def test_merge_memory_benchmark_runs_both_graphs(demo):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.merge_memory", "--quick",
                           "--cache", str(MODEL_CACHE)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert re.search(r"peak RSS edit \d+ MB, merge \+ edit \d+ MB, merge costs [+-]\d+ MB", proc.stdout), proc.stdout


def test_attention_kernel_benchmark_runs_and_the_kernels_agree():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.attention_kernels", "--sizes", "64",
                           "--pairs", "1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("64 px")]
    assert [line.split()[2] for line in lines] == ["attn1", "attn2"]
    assert all(float(line.rsplit(" ", 1)[1]) < 1e-5 for line in lines), lines


def test_ultraedit_benchmark_runs_the_pack_and_the_authors_pipeline():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.ultraedit_speed", "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert re.search(r"^\| 64 x 48 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ / \d+ \|$",
                     proc.stdout, re.MULTILINE), proc.stdout
