import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.latents import Family
from training.unet_input import concat_image_latent, image_latent_for


def test_sd15_and_sdxl_take_the_unscaled_latent_cosxl_the_scaled_one():
    latent = torch.randn(1, 4, 8, 8)
    assert torch.equal(image_latent_for(Family.SD15, latent), latent)
    assert torch.equal(image_latent_for(Family.SDXL, latent), latent)
    torch.testing.assert_close(image_latent_for(Family.COSXL, latent), latent * 0.13025)


def test_concat_puts_the_image_latent_second_on_the_channel_axis():
    noisy, image = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    out = concat_image_latent(noisy, image)
    assert out.shape == (1, 8, 8, 8)
    assert torch.equal(out[:, :4], noisy) and torch.equal(out[:, 4:], image)


def test_concat_broadcasts_one_image_over_the_batch():
    out = concat_image_latent(torch.randn(3, 4, 8, 8), torch.randn(1, 4, 8, 8))
    assert out.shape == (3, 8, 8, 8)
    assert torch.equal(out[0, 4:], out[2, 4:])


def test_concat_refuses_mismatched_batches_and_sizes():
    with pytest.raises(IP2PUserError, match="2 image latents for a batch of 3"):
        concat_image_latent(torch.randn(3, 4, 8, 8), torch.randn(2, 4, 8, 8))
    with pytest.raises(IP2PUserError, match="encode the image at the size you sample at"):
        concat_image_latent(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 16))
