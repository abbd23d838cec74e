import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.framing import Framing, frame, plan_framing, unframe


@pytest.mark.parametrize("size, longest, scaled, padded", [
    ((512, 512), 0, (512, 512), (512, 512)),
    ((389, 517), 0, (389, 517), (392, 520)),
    ((3, 5), 0, (3, 5), (8, 8)),
    ((4032, 3024), 512, (512, 384), (512, 384)),
    ((389, 517), 512, (385, 512), (392, 512)),
])
def test_plan_scales_then_pads_to_multiples_of_8(size, longest, scaled, padded):
    f = plan_framing(*size, longest_side=longest)
    assert (f.scaled, f.padded) == (scaled, padded)
    assert all(p % 8 == 0 for p in f.padded)


def test_padding_is_centred():
    assert plan_framing(389, 517).offset == (1, 1)
    assert plan_framing(61, 45).offset == (1, 1)


@pytest.mark.parametrize("height, width", [(389, 517), (45, 61), (640, 360), (64, 64)])
def test_frame_then_unframe_gives_back_the_exact_pixels_at_native_resolution(height, width):
    image = torch.rand(2, height, width, 3)
    f = plan_framing(height, width)
    framed = frame(image, f)
    assert framed.shape == (2, *f.padded, 3)
    assert torch.equal(unframe(framed, f), image)


def test_working_resolution_round_trip_keeps_size_and_aspect():
    image = torch.rand(1, 389, 517, 3)
    f = plan_framing(389, 517, longest_side=256)
    framed = frame(image, f)
    assert max(framed.shape[1:3]) == 256
    restored = unframe(framed, f)
    assert restored.shape == image.shape
    assert 0.0 <= restored.min() and restored.max() <= 1.0


def test_padding_repeats_edge_pixels_so_the_border_is_not_black():
    image = torch.ones(1, 61, 45, 3) * 0.7
    framed = frame(image, plan_framing(61, 45))
    assert torch.allclose(framed, torch.full_like(framed, 0.7))


def test_masks_frame_like_images():
    mask = torch.zeros(1, 45, 61)
    mask[:, 10:20, 30:40] = 1.0
    f = plan_framing(45, 61)
    framed = frame(mask, f)
    assert framed.shape == (1, 48, 64)
    assert torch.equal(unframe(framed, f), mask)


def test_framing_survives_a_round_trip_through_a_dict():
    f = plan_framing(389, 517, 512)
    assert Framing.from_dict(f.to_dict()) == f


def test_unframing_an_image_of_another_size_names_both_sizes():
    with pytest.raises(IP2PUserError, match="the image is 64x64 but was encoded at 520x392"):
        unframe(torch.rand(1, 64, 64, 3), plan_framing(389, 517))


def test_empty_batch_is_refused_with_a_message():
    with pytest.raises(IP2PUserError, match=r"at least one image, got shape \(0, 64, 64, 3\)"):
        frame(torch.zeros(0, 64, 64, 3), plan_framing(64, 64))


def test_negative_resolution_is_refused():
    with pytest.raises(IP2PUserError, match="working resolution must be 0"):
        plan_framing(64, 64, -8)
