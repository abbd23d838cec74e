import pytest
import torch

from ip2p_core.errors import IP2PUserError
from training.conditioning_dropout import apply_dropout, dropout_masks


def test_masks_follow_the_three_bands():
    q = 0.1
    draws = torch.tensor([0.05, 0.15, 0.25, 0.35, 0.0, 0.1, 0.2, 0.3])
    masks = dropout_masks(draws, q)
    # p < q: text only; q <= p < 2q: both; 2q <= p < 3q: image only; p >= 3q: none.
    assert masks.text.tolist() == [True, True, False, False, True, True, False, False]
    assert masks.image.tolist() == [False, True, True, False, False, True, True, False]


def test_rates_over_many_draws():
    q = 0.05
    masks = dropout_masks(torch.rand(200_000, generator=torch.Generator().manual_seed(0)), q)
    text, image = masks.text.float(), masks.image.float()
    assert text.mean().item() == pytest.approx(2 * q, abs=3e-3)
    assert image.mean().item() == pytest.approx(2 * q, abs=3e-3)
    assert (text * image).mean().item() == pytest.approx(q, abs=3e-3)


def test_apply_replaces_text_and_zeroes_image():
    text = torch.ones(3, 4, 2)
    empty = torch.full((1, 4, 2), -1.0)
    image = torch.ones(3, 4, 2, 2)
    masks = dropout_masks(torch.tensor([0.05, 0.15, 0.9]), 0.1)
    new_text, new_image = apply_dropout(text, empty, image, masks)
    assert new_text[0].eq(-1).all() and new_text[1].eq(-1).all() and new_text[2].eq(1).all()
    assert new_image[0].eq(1).all() and new_image[1].eq(0).all() and new_image[2].eq(1).all()


@pytest.mark.parametrize("q", [-0.1, 0.34])
def test_probability_out_of_range(q):
    with pytest.raises(IP2PUserError, match="between 0 and 1/3"):
        dropout_masks(torch.rand(4), q)
