"""Editing controls in a real host: batches, masks, guidance schedules, rescale, skipped calls;
batches and masks also with IP2P Fewer Passes skipping passes and caching steps."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import IP2P_CKPT, ODD_IMAGE, OTHER_IMAGE, SMALL_IMAGE, SMALL_MASK
from PIL import Image
from reference import formula_latent, relative_diff
from test_host_parity import DIFFUSERS_RTOL, INSTRUCTION

from harness.host_graphs import failure, instruction_lines, pack_edit, saved_images, saved_latent

pytestmark = pytest.mark.host
STEPS = 4  # ComfyUI's "simple" and diffusers' "trailing" timesteps coincide when steps divide 1000
# Batched vs single model calls: the same maths, rounded differently by BLAS blocking, which
# depends on the CPU; a wrong seed or a mixed-up item differs by orders of magnitude more.
BATCH_RTOL = 3e-5


def edit(host, **kwargs):
    kwargs = {"seed": 11, "steps": STEPS, "text_cfg": 7.5, "image_cfg": 1.5, **kwargs}
    return pack_edit(IP2P_CKPT, kwargs.pop("image", SMALL_IMAGE), kwargs.pop("instruction", INSTRUCTION), **kwargs)



MASK_NODE = {"30": {"class_type": "LoadImageMask", "inputs": {"image": SMALL_MASK, "channel": "red"}}}


def fewer(preset: str | None, **kwargs) -> dict:
    """edit() arguments with IP2P Fewer Passes' `preset` on the sampler (None: without the node),
    for the controls that must keep working when passes are skipped and steps cached."""
    if preset is None:
        return kwargs
    nodes = {**kwargs.pop("nodes", {}), "25": {"class_type": "IP2PFewerPasses", "inputs": {"preset": preset}}}
    return {**kwargs, "nodes": nodes, "sampling": {**kwargs.pop("sampling", {}), "fewer_passes": ["25", 0]}}


# -- batches -----------------------------------------------------------------------------

def test_n_images_one_instruction_item_i_is_the_single_edit_with_seed_plus_i(host):
    batch = saved_latent(host, edit(host, nodes={
        "20": {"class_type": "LoadImage", "inputs": {"image": OTHER_IMAGE}},
        "21": {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["20", 0]}},
    }, encode={"image": ["21", 0]}))
    first = saved_latent(host, edit(host, seed=11))
    second = saved_latent(host, edit(host, image=OTHER_IMAGE, seed=12))
    assert batch.shape[0] == 2
    assert relative_diff(batch[:1], first) < BATCH_RTOL
    assert relative_diff(batch[1:], second) < BATCH_RTOL


@pytest.mark.parametrize("preset", [None, "fast"])
def test_one_image_n_instructions_item_i_is_instruction_i_with_seed_plus_i(host, preset):
    lines = ["make it winter", "add fireworks"]
    batch = saved_latent(host, instruction_lines(edit(host, **fewer(preset)), lines))
    singles = [saved_latent(host, instruction_lines(edit(host, **fewer(preset, seed=11 + i)), [line], per_line=False))
               for i, line in enumerate(lines)]
    assert batch.shape[0] == 2
    for item, single in zip(batch, singles):
        assert relative_diff(item[None], single) < BATCH_RTOL


def test_mismatched_image_and_instruction_counts_are_refused(host):
    prompt = instruction_lines(edit(host, nodes={
        "21": {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["2", 0]}},
    }, encode={"image": ["21", 0]}), ["a", "b", "c"])
    assert "3 instructions for 2 images" in failure(host, prompt)


def test_empty_instruction_list_is_refused(host):
    message = failure(host, instruction_lines(edit(host), ["", "   "]))
    assert "'one_instruction_per_line' is on but the instruction box has no non-empty line" in message


# -- masks -------------------------------------------------------------------------------

def latent_mask(test_images) -> torch.Tensor:
    """The mask at latent resolution, as the host shrinks it (bilinear)."""
    mask = torch.from_numpy(np.asarray(Image.open(test_images[SMALL_MASK]).convert("L"), dtype=np.float32) / 255)
    return F.interpolate(mask[None, None], size=(6, 8), mode="bilinear")[0, 0]


@pytest.mark.parametrize("preset", [None, "fast"])
def test_masked_edit_keeps_the_input_latent_outside_the_mask(host, test_images, preset):
    masked = saved_latent(host, edit(host, **fewer(preset, nodes=MASK_NODE, encode={"mask": ["30", 0]})))
    source = saved_latent(host, edit(host, denoise=0.0))
    outside = latent_mask(test_images) == 0
    assert outside.any() and (~outside).any()
    # Equal up to the scale-in/scale-out round trip of the latent format (x * 0.18215 / 0.18215).
    torch.testing.assert_close(masked[..., outside], source[..., outside], rtol=1e-6, atol=1e-6)
    assert (masked[..., ~outside] - source[..., ~outside]).abs().mean() > 1.0


def test_masked_edit_returns_the_input_pixels_outside_the_mask(host, test_images):
    masked = saved_images(host, edit(host, nodes=MASK_NODE, encode={"mask": ["30", 0]}, decode=True))[0]
    source = np.asarray(Image.open(test_images[SMALL_IMAGE]).convert("RGB")).astype(int)
    mask = np.asarray(Image.open(test_images[SMALL_MASK]).convert("L")) > 0
    assert np.abs(masked[~mask].astype(int) - source[~mask]).max() <= 1  # 8-bit rounding
    assert np.abs(masked[mask].astype(int) - source[mask]).mean() > 5


def test_without_the_paste_back_outside_pixels_are_the_vae_round_trip_of_the_latent(host, test_images):
    # What latent masking alone gives: the input latent outside, decoded together with the edit.
    prompt = edit(host, nodes=MASK_NODE, encode={"mask": ["30", 0]}, decode=True)
    prompt["7"]["inputs"]["keep_outside_mask"] = False
    masked = saved_images(host, prompt)[0]
    source = np.asarray(Image.open(test_images[SMALL_IMAGE]).convert("RGB")).astype(int)
    mask = np.asarray(Image.open(test_images[SMALL_MASK]).convert("L")) > 0
    assert np.abs(masked[~mask].astype(int) - source[~mask]).max() > 1


def test_feathered_mask_changes_the_border_only(host):
    hard = saved_latent(host, edit(host, nodes=MASK_NODE, encode={"mask": ["30", 0]}))
    soft = saved_latent(host, edit(host, nodes=MASK_NODE, encode={"mask": ["30", 0], "mask_feather": 8}))
    assert not torch.equal(hard, soft)


def test_mask_of_another_size_is_refused(host):
    message = failure(host, edit(host, image=ODD_IMAGE, nodes=MASK_NODE, encode={"mask": ["30", 0]}))
    assert "the mask is 64x48 but the image is 61x45" in message


def test_empty_mask_is_refused(host):
    nodes = {"30": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 64, "height": 48}}}
    message = failure(host, edit(host, nodes=nodes, encode={"mask": ["30", 0]}))
    assert "the mask is empty (all zero): nothing would be edited" in message


# -- guidance schedules, rescale, skipped predictions ------------------------------------

def schedule(kind, start=0.0, end=0.0, values=""):
    return {"class_type": "IP2PGuidanceSchedule", "inputs": {"kind": kind, "start": start, "end": end, "values": values}}


def test_list_schedule_of_one_value_equals_the_constant_scale(host):
    constant = saved_latent(host, edit(host, text_cfg=6.0))
    listed = saved_latent(host, edit(host, nodes={"40": schedule("list", values="6, 6, 6, 6")},
                                     sampling={"text_cfg_schedule": ["40", 0]}))
    assert torch.equal(constant, listed)


def test_linear_schedules_follow_the_formula_step_by_step(host, tiny_ip2p, test_images):
    nodes = {"40": schedule("linear", 9.0, 5.0), "41": schedule("linear", 1.2, 1.8)}
    latent = saved_latent(host, edit(host, nodes=nodes, sampling={"text_cfg_schedule": ["40", 0],
                                                                  "image_cfg_schedule": ["41", 0]}))
    reference = formula_latent(tiny_ip2p.diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION, seed=11, steps=STEPS,
                               text_cfg=[9.0 - 4.0 * i / 3 for i in range(4)], image_cfg=[1.2, 1.4, 1.6, 1.8])
    assert relative_diff(latent, reference) < DIFFUSERS_RTOL


def test_schedule_list_of_the_wrong_length_is_refused(host):
    prompt = edit(host, nodes={"40": schedule("list", values="1.2, 1.5")}, sampling={"image_cfg_schedule": ["40", 0]})
    assert "the schedule lists 2 values but the sampler runs 4 steps" in failure(host, prompt)


def test_guidance_rescale_follows_lin_et_al(host, tiny_ip2p, test_images):
    latent = saved_latent(host, edit(host, text_cfg=12.0, sampling={"guidance_rescale": 0.7}))
    reference = formula_latent(tiny_ip2p.diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION, seed=11, steps=STEPS,
                               text_cfg=12.0, image_cfg=1.5, rescale=0.7)
    assert relative_diff(latent, reference) < DIFFUSERS_RTOL
    assert relative_diff(latent, saved_latent(host, edit(host, text_cfg=12.0))) > 1e-3


@pytest.mark.parametrize("text_cfg, image_cfg", [(7.5, 1.0), (0.0, 1.0), (1.0, 1.0)])
def test_skipping_zero_weight_predictions_gives_the_three_call_result(host, tiny_ip2p, test_images, text_cfg, image_cfg):
    # The reference always evaluates all three predictions.
    latent = saved_latent(host, edit(host, text_cfg=text_cfg, image_cfg=image_cfg))
    reference = formula_latent(tiny_ip2p.diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION, seed=11, steps=STEPS,
                               text_cfg=text_cfg, image_cfg=image_cfg)
    assert relative_diff(latent, reference) < DIFFUSERS_RTOL
