import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.latents import Family, concat_image_latent, fit_to_latent_grid, image_latent_for, working_size


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


@pytest.mark.parametrize("size, expected", [
    ((512, 512), (512, 512)), ((517, 389), (520, 392)), ((3, 5), (8, 8)), ((515, 12), (512, 16)),
])
def test_working_size_is_the_nearest_multiple_of_8(size, expected):
    assert working_size(*size) == expected


def test_fit_keeps_multiples_of_8_untouched_and_resizes_others_whole():
    image = torch.rand(1, 64, 48, 3)
    assert fit_to_latent_grid(image) is image
    # A left/right split picture: a resize keeps the split in the middle, a crop would shift it.
    odd = torch.zeros(1, 61, 67, 3)
    odd[:, :, 34:] = 1.0
    fitted = fit_to_latent_grid(odd)
    assert fitted.shape == (1, 64, 64, 3)
    assert fitted[0, 32, :31].max() < 0.05 and fitted[0, 32, 33:].min() > 0.95
    assert 0.0 <= fitted.min() and fitted.max() <= 1.0


def test_fit_refuses_an_empty_batch_with_a_message():
    with pytest.raises(IP2PUserError, match="at least one image"):
        fit_to_latent_grid(torch.zeros(0, 64, 64, 3))
