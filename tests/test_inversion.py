"""The checks that keep an inverted noise to the run it was made for."""
import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.inversion import (
    START_SIGMA,
    Inversion,
    check_schedule,
    fit_batch,
    rising_sigmas,
    sampler_adds_noise,
)

SIGMAS = torch.tensor([14.6, 3.0, 0.9, 0.0])
INVERSION = Inversion(tuple(float(s) for s in SIGMAS), (4, 6, 8))


def test_the_inversion_climbs_the_schedule_from_just_above_zero():
    assert torch.equal(rising_sigmas(SIGMAS), torch.tensor([START_SIGMA, 0.9, 3.0, 14.6]))
    partial = torch.tensor([3.0, 0.9, 0.2])
    assert torch.equal(rising_sigmas(partial), torch.tensor([0.2, 0.9, 3.0]))
    assert torch.equal(SIGMAS, torch.tensor([14.6, 3.0, 0.9, 0.0]))  # not changed in place


@pytest.mark.parametrize("name, adds", [
    ("sample_euler", False), ("sample_dpmpp_2m", False), ("sample_heun", False), ("euler", False),
    ("sample_euler_ancestral", True), ("sample_dpmpp_2m_sde_gpu", True), ("sample_lcm", True), ("ddpm", True),
    ("sample_er_sde", True), ("sample_seeds_2", True), ("sample_sa_solver", True),
])
def test_samplers_that_draw_noise_each_step_are_known_by_name(name, adds):
    assert sampler_adds_noise(name) is adds


def test_the_same_run_passes_and_another_is_refused_saying_what_to_change():
    check_schedule(INVERSION, SIGMAS.clone(), "sample_euler")
    with pytest.raises(IP2PUserError, match=r"made this noise for 3 steps \(noise 14.6 to 0\), but the sampler runs "
                                            r"2 steps \(noise 14.6 to 0\): give IP2P Invert the sampler's steps"):
        check_schedule(INVERSION, torch.tensor([14.6, 3.0, 0.0]), "sample_euler")
    with pytest.raises(IP2PUserError, match="but the sampler runs 3 steps"):
        check_schedule(INVERSION, torch.tensor([14.6, 2.5, 0.9, 0.0]), "sample_euler")
    with pytest.raises(IP2PUserError, match="the sampler 'euler_ancestral' adds fresh noise at every step"):
        check_schedule(INVERSION, SIGMAS, "sample_euler_ancestral")


def test_one_images_noise_serves_a_batch_of_its_edits_and_another_size_is_refused():
    noise = torch.randn(1, 4, 6, 8)
    assert torch.equal(fit_batch(noise, INVERSION, (1, 4, 6, 8)), noise)
    assert torch.equal(fit_batch(noise, INVERSION, (3, 4, 6, 8)), noise.expand(3, 4, 6, 8))
    with pytest.raises(IP2PUserError, match=r"for a latent of 64x48 px \(4x6x8\), but the sampler's is 128x48 px "
                                            r"\(4x6x16\): invert the same image at the same size"):
        fit_batch(noise, INVERSION, (1, 4, 6, 16))
    with pytest.raises(IP2PUserError, match="IP2P Invert made 2 noises, but the sampler makes 3 edits"):
        fit_batch(torch.randn(2, 4, 6, 8), INVERSION, (3, 4, 6, 8))
