import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.color import lab_to_rgb, match_color, rgb_to_lab


def picture(seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 32, 48, 3, generator=g)
    return (base * 0.6 + 0.2).clamp(0, 1)


def test_lab_round_trip_is_lossless():
    rgb = torch.rand(2, 8, 8, 3)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4, rtol=0)


def test_a_synthetic_colour_and_contrast_drift_is_undone():
    source = picture()
    drifted = ((source - 0.5) * 1.3 + 0.5 + torch.tensor([0.08, -0.03, -0.05])).clamp(0, 1)
    matched = match_color(drifted, source)
    before = (drifted - source).abs().mean()
    after = (matched - source).abs().mean()
    assert after < before / 3  # much closer, not exact: clamping makes the drift not exactly invertible
    torch.testing.assert_close(rgb_to_lab(matched).mean(dim=(1, 2)), rgb_to_lab(source).mean(dim=(1, 2)),
                               atol=0.5, rtol=0)


def test_strength_zero_returns_the_image_and_half_is_in_between():
    source, other = picture(0), picture(1) * 0.5
    assert torch.equal(match_color(other, source, 0.0), other)
    half = match_color(other, source, 0.5)
    torch.testing.assert_close(half, (other + match_color(other, source, 1.0)) / 2)


def test_mismatched_reference_batch_and_bad_strength_are_refused():
    with pytest.raises(IP2PUserError, match="2 reference images for 3 images"):
        match_color(torch.rand(3, 8, 8, 3), torch.rand(2, 8, 8, 3))
    with pytest.raises(IP2PUserError, match="between 0 and 1"):
        match_color(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3), 1.5)
