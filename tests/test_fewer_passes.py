"""Per-term guidance intervals and adaptive switch-off: which passes drop, and when."""
import pytest
import torch

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.fewer_passes import PRESETS, PassPlan, PassSaving, predictions_agree, term_scales
from ip2p_core.inference.guidance import add_text_guidance, needed_predictions


def guided(full, image, uncond, text_cfg, image_cfg):
    return add_text_guidance(uncond + image_cfg * (image - uncond), full, image, text_cfg)


@pytest.mark.parametrize("text_on, image_on, needed", [
    (True, True, (True, True, True)),
    (False, True, (True, False, True)),   # text off: the image prediction drops
    (True, False, (False, True, True)),   # image off: uncond drops
    (False, False, (False, False, True)),  # both: the full prediction alone
])
def test_a_term_turned_off_drops_its_pass(text_on, image_on, needed):
    assert needed_predictions(*term_scales(7.5, 1.5, text_on, image_on)) == needed


def test_turned_off_terms_give_the_formulas_the_module_states():
    # float32's own tolerances (assert_close): the formula reaches `full` through two subtractions,
    # whose rounding torch.allclose's 1e-8 absolute bound failed on values near zero.
    full, image, uncond = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(guided(full, image, uncond, *term_scales(7.5, 1.5, False, True)),
                               uncond + 1.5 * (full - uncond))
    torch.testing.assert_close(guided(full, image, uncond, *term_scales(7.5, 1.5, True, False)),
                               image + 7.5 * (full - image))
    torch.testing.assert_close(guided(full, image, uncond, *term_scales(7.5, 1.5, False, False)), full)


def linear_sigmas(percent: float) -> float:
    """A stand-in for model_sampling.percent_to_sigma: 10 at the start, 0 at the end."""
    return 10.0 * (1.0 - percent)


def test_each_term_is_on_only_inside_its_own_range():
    plan = PassPlan(PassSaving(text_range=(0.0, 0.5), image_range=(0.2, 1.0)), linear_sigmas)
    assert plan.scales(9.0, 7.5, 1.5) == (7.5, 1.0)  # image not yet on
    assert plan.scales(6.0, 7.5, 1.5) == (7.5, 1.5)  # both
    assert plan.scales(5.0, 7.5, 1.5) == (7.5, 1.5)  # the ends are inside
    assert plan.scales(3.0, 7.5, 1.5) == (1.5, 1.5)  # text over: CFG on the joint condition


def test_the_default_skips_nothing():
    plan = PassPlan(PassSaving(), linear_sigmas)
    x = torch.randn(2, 4, 8, 8)
    for sigma in (10.0, 5.0, 0.01):
        assert plan.scales(sigma, 7.5, 1.5) == (7.5, 1.5)
        plan.observe(x, x + 1, x + 1, x + 1)  # identical predictions: agreement is off at 1
    assert plan.scales(0.01, 7.5, 1.5) == (7.5, 1.5)


def test_a_term_whose_predictions_agree_stops_for_the_rest_of_the_run():
    plan = PassPlan(PassSaving(agreement=0.99), linear_sigmas)
    x = torch.zeros(2, 4, 8, 8)
    direction = torch.randn(2, 4, 8, 8)
    plan.scales(9.0, 7.5, 1.5)
    plan.observe(x, full=direction, image=direction * 1.001, uncond=-direction)
    assert plan.agreed == {"text": True, "image": False}
    assert plan.scales(8.0, 7.5, 1.5) == (1.5, 1.5)
    # The image pass is not computed now: the image term compares full with uncond.
    plan.observe(x, full=direction, image=None, uncond=direction * 1.0001)
    assert plan.scales(7.0, 7.5, 1.5) == (1.0, 1.0)
    assert plan.agreed == {"text": True, "image": True}


def test_agreement_needs_every_sample_of_the_batch():
    x = torch.zeros(2, 3)
    a = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert predictions_agree(x, a, a, 0.999)
    assert not predictions_agree(x, a, b, 0.5)


@pytest.mark.parametrize("settings, message", [
    ({"text_range": (0.6, 0.4)}, r"text guidance range must satisfy 0 <= text_start <= text_end <= 1, got 0.6 to 0.4"),
    ({"image_range": (0.0, 1.5)}, r"image guidance range .* got 0.0 to 1.5"),
    ({"agreement": 0.0}, r"stop_when_agree must be above 0 and at most 1 \(1 = never stop\), got 0.0"),
])
def test_bad_settings_are_refused_with_the_input_named(settings, message):
    with pytest.raises(IP2PUserError, match=message):
        PassSaving(**settings)


def test_faithful_is_the_default_and_every_other_preset_saves_something():
    assert PRESETS["faithful"] == PassSaving()
    for name, saving in PRESETS.items():
        if name != "faithful":
            assert (saving.text_range != (0.0, 1.0) or saving.image_range != (0.0, 1.0) or saving.agreement < 1.0
                    or saving.cache_interval > 1), name
