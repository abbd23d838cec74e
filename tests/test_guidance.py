import torch

from ip2p_core.guidance import add_text_guidance, cfg, dual_cfg


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
