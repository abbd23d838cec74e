import pytest
import torch
import torch.nn.functional as F

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.conv_in import widen_conv_in


def test_widened_conv_keeps_weights_and_zeroes_new_channels():
    weight = torch.randn(320, 4, 3, 3)
    wide = widen_conv_in(weight)
    assert wide.shape == (320, 8, 3, 3)
    assert torch.equal(wide[:, :4], weight)
    assert torch.count_nonzero(wide[:, 4:]) == 0


def test_widened_conv_computes_what_the_sd_conv_did_whatever_the_image_channels_hold():
    weight, bias = torch.randn(16, 4, 3, 3), torch.randn(16)
    noisy, image = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    before = F.conv2d(noisy, weight, bias, padding=1)
    after = F.conv2d(torch.cat([noisy, image], 1), widen_conv_in(weight), bias, padding=1)
    torch.testing.assert_close(after, before)


def test_widening_refuses_fewer_channels_than_present():
    with pytest.raises(IP2PUserError, match="already takes 8 input channels, more than the 4"):
        widen_conv_in(torch.randn(4, 8, 3, 3), in_channels=4)
