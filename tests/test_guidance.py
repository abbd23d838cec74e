import torch

import pytest

from ip2p_core.inference.guidance import add_text_guidance, cfg, dual_cfg, needed_predictions, rescale_guidance


def preds(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, 8, 8, generator=g) for _ in range(3)]


def test_dual_cfg_is_the_paper_formula():
    full, image, uncond = preds()
    expected = uncond + 1.5 * (image - uncond) + 7.5 * (full - image)
    torch.testing.assert_close(dual_cfg(full, image, uncond, text_cfg=7.5, image_cfg=1.5), expected)


def test_image_cfg_zero_leaves_uncond_plus_text_term():
    full, image, uncond = preds(1)
    torch.testing.assert_close(dual_cfg(full, image, uncond, 7.5, 0.0), uncond + 7.5 * (full - image))


def test_text_cfg_zero_leaves_image_guidance_only():
    full, image, uncond = preds(2)
    torch.testing.assert_close(dual_cfg(full, image, uncond, 0.0, 1.5), cfg(image, uncond, 1.5))


def test_both_scales_one_is_the_full_prediction():
    full, image, uncond = preds(3)
    torch.testing.assert_close(dual_cfg(full, image, uncond, 1.0, 1.0), full)


def test_scales_below_one_are_applied_not_ignored():
    # diffusers silently turns guidance off for image scales below 1; we apply the formula.
    full, image, uncond = preds(4)
    assert not torch.allclose(dual_cfg(full, image, uncond, 7.5, 0.5), dual_cfg(full, image, uncond, 7.5, 1.0))


def test_add_text_guidance_composes_with_any_image_term():
    full, image, uncond = preds(5)
    image_guided = cfg(image, uncond, 2.0)
    torch.testing.assert_close(add_text_guidance(image_guided, full, image, 3.0), dual_cfg(full, image, uncond, 3.0, 2.0))


@pytest.mark.parametrize("text_cfg, image_cfg, needed", [
    (7.5, 1.5, (True, True, True)),
    (7.5, 1.0, (False, True, True)),  # uncond's weight 1 - image_cfg is zero
    (0.0, 1.5, (True, True, False)),  # full's weight text_cfg is zero
    (0.0, 0.0, (True, False, False)),
    (1.0, 1.0, (False, False, True)),
])
def test_predictions_with_zero_weight_are_not_needed(text_cfg, image_cfg, needed):
    assert needed_predictions(text_cfg, image_cfg) == needed
    full, image, uncond = preds(6)
    zero = torch.zeros_like(full)
    kept = [p if n else zero for p, n in zip((uncond, image, full), needed)]
    torch.testing.assert_close(dual_cfg(kept[2], kept[1], kept[0], text_cfg, image_cfg),
                               dual_cfg(full, image, uncond, text_cfg, image_cfg))


def test_rescale_restores_the_reference_spread():
    full, image, uncond = preds(7)
    guided = dual_cfg(full, image, uncond, 12.0, 1.5)
    rescaled = rescale_guidance(guided, full, 1.0)
    torch.testing.assert_close(rescaled.std(dim=(1, 2, 3)), full.std(dim=(1, 2, 3)))
    torch.testing.assert_close(rescale_guidance(guided, full, 0.0), guided)
    torch.testing.assert_close(rescale_guidance(guided, full, 0.5), (guided + rescaled) / 2)
