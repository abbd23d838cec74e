"""The pack's sampler against diffusers and ComfyUI's native dual-CFG, on the same weights and noise.

Tolerances are relative to the largest latent value. The random-weight test UNet does not
denoise, so its final latents are far larger than a trained model's and float32 rounding grows
with them. Against diffusers the same weights run through other attention kernels, a sigma table
in float64 rather than float32 and another order of the guidance sums: DIFFUSERS_RTOL bounds that
rounding, on this model and on the demo model, with one torch thread per process (as
`harness/test.sh` runs its test processes and their hosts) or more; a wrong scale or a swapped
term changes the latent by orders of magnitude more. Diffusers' pipeline and the formula written
out over its UNet differ by rounding of the same kind. Within one host the pack and the native
guider run the same batch in the same order, but on the CPU native keeps the host's
sub-quadratic attention where the pack runs PyTorch's (nodes/attention.py), so NATIVE_RTOL is
the same bound; with the same kernel (a host started with an attention flag) the two agree
closer still (tests/test_host_attention.py). The full-size model's differences between the three
paths are in benchmarks/RESULTS.md ("Do the outputs agree?").
"""
import pytest
import torch
from conftest import IP2P_CKPT, SMALL_IMAGE
from reference import formula_latent, pipeline_latent, relative_diff

from harness.host_graphs import native_edit, pack_edit, saved_latent

pytestmark = pytest.mark.host
INSTRUCTION = "turn the sky into a sunset"
STEPS = 4
SEED = 3
DIFFUSERS_RTOL = 5e-5
NATIVE_RTOL = DIFFUSERS_RTOL


def pack_latent(host, text_cfg=7.5, image_cfg=1.5, **kwargs):
    return saved_latent(host, pack_edit(IP2P_CKPT, SMALL_IMAGE, INSTRUCTION, seed=SEED, steps=STEPS,
                                        text_cfg=text_cfg, image_cfg=image_cfg, **kwargs))


def native_latent(host, encoder):
    guider_inputs = set(host.object_info("DualCFGGuider")["input"]["required"])
    return saved_latent(host, native_edit(IP2P_CKPT, SMALL_IMAGE, INSTRUCTION, seed=SEED, steps=STEPS, text_cfg=7.5,
                                          image_cfg=1.5, guider_inputs=guider_inputs, encoder=encoder))


def test_matches_comfyui_native_dual_cfg_guider_on_the_same_conditioning(host):
    assert relative_diff(pack_latent(host), native_latent(host, "IP2PEncode")) < NATIVE_RTOL


def test_matches_comfyui_native_ip2p_wiring_end_to_end(host, request):
    if host.kind == "pypi":
        # The 2024 host's VAE samples the posterior: its native IP2P node conditions on a noisy
        # latent, which is why nodes/host.py encodes the mode. Strict: fails if that changes.
        request.applymarker(pytest.mark.xfail(strict=True, reason="PyPI host's VAE encode samples the posterior"))
    assert relative_diff(pack_latent(host), native_latent(host, "InstructPixToPixConditioning")) < NATIVE_RTOL


def test_matches_diffusers_instruct_pix2pix_pipeline(host, tiny_ip2p, test_images):
    reference = pipeline_latent(tiny_ip2p.diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION, seed=SEED,
                                steps=STEPS, text_cfg=7.5, image_cfg=1.5)
    assert relative_diff(pack_latent(host), reference) < DIFFUSERS_RTOL


@pytest.mark.parametrize("text_cfg, image_cfg", [(0.0, 1.5), (7.5, 0.0), (0.0, 0.0), (7.5, 0.5)])
def test_any_scale_follows_the_formula(host, tiny_ip2p, test_images, text_cfg, image_cfg):
    # diffusers' pipeline turns guidance off below image scale 1, so the reference here is
    # the formula written out over diffusers' UNet.
    reference = formula_latent(tiny_ip2p.diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION, seed=SEED,
                               steps=STEPS, text_cfg=text_cfg, image_cfg=image_cfg)
    assert relative_diff(pack_latent(host, text_cfg=text_cfg, image_cfg=image_cfg), reference) < DIFFUSERS_RTOL


def test_formula_reference_agrees_with_the_pipeline(tiny_ip2p, test_images):
    """Guards the hand-written reference itself."""
    args = (tiny_ip2p.diffusers_dir, test_images[SMALL_IMAGE], INSTRUCTION)
    kwargs = dict(seed=SEED, steps=STEPS, text_cfg=7.5, image_cfg=1.5)
    assert relative_diff(formula_latent(*args, **kwargs), pipeline_latent(*args, **kwargs)) < DIFFUSERS_RTOL


def test_changing_image_cfg_changes_the_edit(host):
    assert relative_diff(pack_latent(host, image_cfg=3.0), pack_latent(host, image_cfg=1.5)) > 1e-2


def test_denoise_below_one_starts_from_the_input_image(host):
    source = pack_latent(host, denoise=0.0)  # no steps: the encoded input itself
    partial = pack_latent(host, denoise=0.3)
    full = pack_latent(host, denoise=1.0)
    assert (partial - source).abs().mean() < (full - source).abs().mean() / 2
    assert not torch.equal(partial, source)
