"""IP2P Invert on the demo model: the inverted noise paints the input back, and an edit started
from it keeps more of the picture than one from random noise, without losing the edit."""
import math

import numpy as np
import pytest
from conftest import DEMO_IMAGE
from PIL import Image
from test_host_demo_edits import demo_edit, edited
from test_host_demo_fresh_scenes import first_of_each_kind

from training.evaluate_edits import score

pytestmark = pytest.mark.host
STEPS = 20
# dB against the input, empty instruction, 20 Euler steps: above what random noise paints back (the
# model, asked nothing, drifts toward its average edit); both are in benchmarks/RESULTS.md, "Inversion on the demo model".
ROUND_TRIP_PSNR = 19.0
LOCAL_KINDS = ("recolor", "remove", "move", "add")


def from_inverted(graph: dict) -> dict:
    """A demo_edit graph (Euler) whose sampler starts from IP2P Invert's noise (node 20)."""
    sampler = graph["6"]["inputs"]
    graph["20"] = {"class_type": "IP2PInvert", "inputs": {
        "model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1], "steps": sampler["steps"],
        "image_cfg": sampler["image_cfg"], "sampler_name": sampler["sampler_name"],
        "scheduler": sampler["scheduler"], "denoise": sampler["denoise"]}}
    sampler["noise"] = ["20", 0]
    return graph


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, float) / 255 - np.asarray(b, float) / 255) ** 2)
    return 10 * math.log10(1 / mse)


def test_the_inverted_noise_paints_the_input_back(host):
    original = Image.open(host.input_dir / DEMO_IMAGE).convert("RGB")
    (back,) = edited(host, from_inverted(demo_edit("", steps=STEPS)))
    (random_start,) = edited(host, demo_edit("", steps=STEPS))
    assert psnr(back, original) > ROUND_TRIP_PSNR
    assert psnr(back, original) > psnr(random_start, original) + 3


def test_edits_from_the_inverted_noise_keep_more_and_still_edit(host, tmp_path):
    """The first two fresh test scenes of each local kind (test_host_demo_fresh_scenes.py's draw):
    less collateral damage on average than from the seed's noise, and no fewer edits right."""
    pairs = [pair for pair in first_of_each_kind(2) if pair.edit.kind in LOCAL_KINDS]
    inverted, random_start = [], []
    for index, pair in enumerate(pairs):
        pair.original.save(tmp_path / f"inverted{index}.png")
        name = host.add_input(tmp_path / f"inverted{index}.png")
        inverted += edited(host, from_inverted(demo_edit(pair.instruction, image=name, steps=STEPS)))
        random_start += edited(host, demo_edit(pair.instruction, image=name, steps=STEPS))
    kept = [score(p, e) for p, e in zip(pairs, inverted)]
    plain = [score(p, e) for p, e in zip(pairs, random_start)]
    assert sum(s.success for s in kept) >= sum(s.success for s in plain)
    assert np.mean([s.collateral_mse for s in kept]) < np.mean([s.collateral_mse for s in plain])
