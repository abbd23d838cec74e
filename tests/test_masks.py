import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.masks import check_mask, composite, feather


def test_mask_of_another_size_names_both_sizes():
    with pytest.raises(IP2PUserError, match="the mask is 32x32 but the image is 64x48"):
        check_mask(torch.ones(1, 32, 32), torch.rand(1, 48, 64, 3))


def test_empty_mask_is_refused_with_what_to_do():
    with pytest.raises(IP2PUserError, match="the mask is empty.*disconnect the mask to edit the whole image"):
        check_mask(torch.zeros(1, 48, 64), torch.rand(1, 48, 64, 3))


def test_mask_batch_must_be_one_or_one_per_image():
    with pytest.raises(IP2PUserError, match="2 masks for 3 images"):
        check_mask(torch.ones(2, 8, 8), torch.rand(3, 8, 8, 3))
    assert check_mask(torch.ones(8, 8), torch.rand(3, 8, 8, 3)).shape == (1, 8, 8)


def test_feather_softens_only_near_the_border():
    mask = torch.zeros(1, 64, 64)
    mask[:, :, 32:] = 1.0
    soft = feather(mask, 8)
    assert soft[0, 10, 0] == 0 and soft[0, 10, 63] == pytest.approx(1.0)
    assert 0.3 < soft[0, 10, 32] < 0.7 and 0.0 < soft[0, 10, 28] < soft[0, 10, 36] < 1.0
    assert torch.equal(feather(mask, 0), mask)


def test_composite_keeps_the_source_outside_and_blends_the_border():
    edited, source = torch.ones(2, 4, 4, 3), torch.zeros(1, 4, 4, 3)
    mask = torch.tensor([[0.0, 0.5, 1.0, 1.0]]).expand(4, 4)[None]
    out = composite(edited, source, mask)
    assert out.shape == (2, 4, 4, 3)
    assert torch.equal(out[:, :, 0], torch.zeros(2, 4, 3)) and torch.equal(out[:, :, 3], torch.ones(2, 4, 3))
    assert torch.allclose(out[:, :, 1], torch.full((2, 4, 3), 0.5))


def test_composite_refuses_batches_that_do_not_divide():
    with pytest.raises(IP2PUserError, match="2 source images for 3 edited images"):
        composite(torch.ones(3, 4, 4, 3), torch.zeros(2, 4, 4, 3), torch.ones(1, 4, 4))
