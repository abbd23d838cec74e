import pytest
import torch

from ip2p_core.inference.guidance import add_text_guidance, needed_predictions, rescale_guidance


def paper_formula(full, image, uncond, text_cfg, image_cfg):
    """Brooks et al. 2023, eq. 3, written out: the oracle the pack's pieces are checked against."""
    return uncond + image_cfg * (image - uncond) + text_cfg * (full - image)


def dual_cfg(full, image, uncond, text_cfg, image_cfg):
    """What the guider computes: the host's two-term CFG for the image term, then the text term."""
    return add_text_guidance(uncond + image_cfg * (image - uncond), full, image, text_cfg)


def preds(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, 8, 8, generator=g) for _ in range(3)]


@pytest.mark.parametrize("text_cfg, image_cfg", [(7.5, 1.5), (7.5, 0.0), (0.0, 1.5), (1.0, 1.0), (7.5, 0.5)])
def test_the_guider_computes_the_paper_formula(text_cfg, image_cfg):
    full, image, uncond = preds()
    torch.testing.assert_close(dual_cfg(full, image, uncond, text_cfg, image_cfg),
                               paper_formula(full, image, uncond, text_cfg, image_cfg))


def test_image_cfg_zero_leaves_uncond_plus_text_term():
    full, image, uncond = preds(1)
    torch.testing.assert_close(dual_cfg(full, image, uncond, 7.5, 0.0), uncond + 7.5 * (full - image))


def test_text_cfg_zero_leaves_image_guidance_only():
    full, image, uncond = preds(2)
    torch.testing.assert_close(dual_cfg(full, image, uncond, 0.0, 1.5), uncond + 1.5 * (image - uncond))


def test_both_scales_one_is_the_full_prediction():
    full, image, uncond = preds(3)
    torch.testing.assert_close(dual_cfg(full, image, uncond, 1.0, 1.0), full)


def test_scales_below_one_are_applied_not_ignored():
    # diffusers silently turns guidance off for image scales below 1; we apply the formula.
    full, image, uncond = preds(4)
    assert not torch.allclose(dual_cfg(full, image, uncond, 7.5, 0.5), dual_cfg(full, image, uncond, 7.5, 1.0))


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
