"""IP2P Invert on the demo model: the inverted noise paints the input back, and an edit started
from it keeps more of the picture than one from random noise, without losing the edit."""
import math

import numpy as np
import pytest
from conftest import DEMO_IMAGE
from PIL import Image
from test_host_demo_edits import RECOLOUR, demo_edit, edited

from training.evaluate_edits import score
from training.synthetic_shapes import edit_pair, example_scene

pytestmark = pytest.mark.host
STEPS = 20
# dB against the input, empty instruction, 20 Euler steps: above what random noise paints back (the
# model, asked nothing, drifts toward its average edit); both are in benchmarks/RESULTS.md, "Inversion".
ROUND_TRIP_PSNR = 19.0


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


def test_an_edit_from_the_inverted_noise_keeps_more_and_still_edits(host):
    pair = edit_pair(example_scene(), RECOLOUR)
    (inverted,) = edited(host, from_inverted(demo_edit(pair.instruction, steps=STEPS)))
    (random_start,) = edited(host, demo_edit(pair.instruction, steps=STEPS))
    kept, plain = score(pair, inverted), score(pair, random_start)
    assert kept.success, "from the inverted noise the square did not turn red"
    assert kept.collateral_mse < plain.collateral_mse
