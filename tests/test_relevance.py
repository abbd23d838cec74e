import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.relevance import (
    NO_CHANGE,
    noise_draws,
    noise_level_percent,
    prediction_difference,
    relevance_map,
    relevance_mask,
    to_pixels,
)


def local_difference(size: int = 8, value: float = 2.0, background: float = 0.05) -> torch.Tensor:
    """(1, size, size): one 2x2 patch of cells the instruction changes, a faint rest."""
    difference = torch.full((1, size, size), background)
    difference[:, 2:4, 5:7] = value
    return difference


def test_the_difference_is_of_noise_predictions_summed_over_channels():
    full, image_only = torch.zeros(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)
    full[0, :, 1, 1] = torch.tensor([1.0, -1.0, 0.5, 0.0])
    difference = prediction_difference(full, image_only, torch.tensor([2.0, 4.0]))
    assert difference.shape == (2, 3, 3)
    assert difference[0, 1, 1] == pytest.approx(2.5 / 2.0) and float(difference.sum()) == pytest.approx(1.25)


def test_the_changed_place_is_the_relevant_one():
    relevance = relevance_map([local_difference()])
    assert torch.all(relevance[:, 2:4, 5:7] == 1.0)
    assert float(relevance.max()) == 1.0 and float(relevance[0, 6, 0]) < 0.1


def test_relevance_is_relative_to_the_most_changed_place():
    difference = local_difference(background=0.0)
    difference[:, 6, 1] = 1.0  # changed half as much as the edit's cells
    relevance = relevance_map([difference])
    assert float(relevance[0, 6, 1]) == pytest.approx(0.5) and float(relevance[0, 0, 0]) == 0.0


def test_an_edit_of_the_whole_picture_keeps_all_of_it():
    difference = torch.full((1, 8, 8), 1.0)
    difference[:, :4] = 0.7  # changed everywhere, more in one half
    assert torch.all(relevance_map([difference]) >= 0.5)


def test_no_change_is_no_relevance_not_scaled_up_rounding():
    assert torch.equal(relevance_map([torch.zeros(1, 8, 8)]), torch.zeros(1, 8, 8))
    rounding = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)) * NO_CHANGE / 2
    assert torch.equal(relevance_map([rounding]), torch.zeros(1, 8, 8))


def test_draws_are_averaged_and_each_edit_is_scaled_on_its_own():
    faint, strong = local_difference(value=1.0), local_difference(value=100.0, background=5.0)
    relevance = relevance_map([torch.cat([faint, strong]), torch.cat([faint, strong])])
    assert relevance.shape == (2, 8, 8)
    assert torch.allclose(relevance[0, 2:4, 5:7], torch.ones(2, 2)) and torch.allclose(relevance[1, 2:4, 5:7],
                                                                                         torch.ones(2, 2))
    one_draw = relevance_map([local_difference(value=1.0)])
    two_draws = relevance_map([local_difference(value=0.5), local_difference(value=1.5)])
    assert torch.allclose(one_draw, two_draws)


def test_no_draw_is_refused():
    with pytest.raises(IP2PUserError, match="at least one noise draw"):
        relevance_map([])


def test_the_mask_is_the_thresholded_map_grown_by_the_margin():
    relevance = to_pixels(relevance_map([local_difference()]), (64, 64))
    assert relevance.shape == (1, 64, 64)
    mask = relevance_mask(relevance, 0.5, 0, 0)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(mask, (relevance >= 0.5).float())
    rows, columns = torch.nonzero(mask[0], as_tuple=True)
    grown = relevance_mask(relevance, 0.5, 3, 0)
    grown_rows, grown_columns = torch.nonzero(grown[0], as_tuple=True)
    assert int(grown_rows.min()) == int(rows.min()) - 3 and int(grown_columns.max()) == int(columns.max()) + 3
    assert mask.sum() < relevance_mask(relevance, 0.2, 0, 0).sum(), "a lower threshold edits more"


def test_feather_softens_the_border():
    relevance = to_pixels(relevance_map([local_difference()]), (64, 64))
    soft = relevance_mask(relevance, 0.5, 0, 4)
    assert ((soft > 0) & (soft < 1)).any() and float(soft.max()) == pytest.approx(1.0)


@pytest.mark.parametrize("threshold, margin, feather, message", [
    (0.0, 0, 0, "threshold must be above 0"), (1.5, 0, 0, "threshold must be above 0"),
    (0.5, -1, 0, "margin and feather are pixels"), (0.5, 0, -2, "margin and feather are pixels")])
def test_bad_mask_settings_are_refused(threshold, margin, feather, message):
    with pytest.raises(IP2PUserError, match=message):
        relevance_mask(torch.zeros(1, 8, 8), threshold, margin, feather)


def test_the_noise_level_is_the_papers_fraction_of_the_training_noise():
    assert noise_level_percent(0.8) == pytest.approx(0.2)
    assert noise_level_percent(1.0) == 0.0
    for bad in (0.0, -0.1, 1.2):
        with pytest.raises(IP2PUserError, match="noise_level must be above 0 and at most 1"):
            noise_level_percent(bad)


def test_noise_draws_are_seeded_and_leave_the_process_random_state_alone():
    state = torch.get_rng_state()
    first, second = noise_draws((2, 4, 8, 8), seed=7, draws=2), noise_draws((2, 4, 8, 8), seed=7, draws=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])
