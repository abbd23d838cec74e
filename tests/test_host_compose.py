"""What users stack on a model, through the pack's sampler, in a real host.

Each patch must change the edit, and where the host has its own path for the same patch
(its DualCFGGuider + SamplerCustomAdvanced on the same IP2P Encode conditionings) give that
path's result. Both make the same three predictions in one model call, but on the CPU the
host's path keeps its sub-quadratic attention where the pack runs PyTorch's
(nodes/attention.py): float32 rounding of two kernels, bounded by KERNEL_RTOL (of the largest
latent value) as against diffusers in test_host_parity; so is a pack edit whose attention
replacement (the probe's, running the host's kernel) keeps the user's kernel there. Two pack
edits with the same patches run the same kernels: SAME_HOST_RTOL leaves room for float32
rounding should the host group the predictions differently.
"""
import pytest
import torch
from conftest import CONTROLNET, IP2P_CKPT, LORA_CORE, LORA_IP2P, LORA_PLAIN_SD15, SMALL_IMAGE
from reference import relative_diff
from test_host_parity import DIFFUSERS_RTOL

from harness.host_graphs import native_edit, pack_edit, saved_images, saved_latent
from tools.comfy_host import REPO_ROOT
from tools.workflow_inputs import load_workflow, with_inputs

pytestmark = pytest.mark.host
INSTRUCTION = "turn the sky into a sunset"
STEPS = 3
SEED = 5
SAME_HOST_RTOL = 1e-6
KERNEL_RTOL = DIFFUSERS_RTOL  # the pack's PyTorch attention against native's sub-quadratic (test_host_parity)
CHANGED = 1e-3  # a patch that takes effect moves the latent by more than this (relative)


# -- graphs ------------------------------------------------------------------------------

def pack_graph(text_cfg=7.5, image_cfg=1.5):
    """Node ids: 1 loader (MODEL, CLIP, VAE), 2 image, 3 instruction, 4 empty text,
    5 IP2P Encode, 6 IP2P Sampler, 7 SaveLatent."""
    return pack_edit(IP2P_CKPT, SMALL_IMAGE, INSTRUCTION, seed=SEED, steps=STEPS, text_cfg=text_cfg,
                     image_cfg=image_cfg)


def native_graph(host, text_cfg=7.5, image_cfg=1.5):
    """The same ids 1-5 (a host loader), then 6 DualCFGGuider ... 10 SamplerCustomAdvanced."""
    guider_inputs = set(host.object_info("DualCFGGuider")["input"]["required"])
    return native_edit(IP2P_CKPT, SMALL_IMAGE, INSTRUCTION, seed=SEED, steps=STEPS, text_cfg=text_cfg,
                       image_cfg=image_cfg, guider_inputs=guider_inputs, encoder="IP2PEncode")


def insert(graph, nodes: dict, reroute: dict) -> dict:
    """Adds `nodes` and points every other node's input that was linked to a key of
    `reroute` (an output, "id:index") at its value (another output) instead."""
    graph = {**graph, **nodes}
    for node_id, node in graph.items():
        if node_id in nodes:
            continue
        for name, value in node["inputs"].items():
            if isinstance(value, list) and f"{value[0]}:{value[1]}" in reroute:
                node["inputs"][name] = reroute[f"{value[0]}:{value[1]}"]
    return graph


def patched_model(graph, class_type, **inputs):
    """The loader's MODEL through one patch node (id 30) for everything that uses it."""
    return insert(graph, {"30": {"class_type": class_type, "inputs": {"model": ["1", 0], **inputs}}},
                  {"1:0": ["30", 0]})


def with_lora(graph, lora, strength_model=1.0, strength_clip=None):
    if strength_clip is None:
        return patched_model(graph, "LoraLoaderModelOnly", lora_name=lora, strength_model=strength_model)
    node = {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora,
                                                   "strength_model": strength_model,
                                                   "strength_clip": strength_clip}}
    return insert(graph, {"30": node}, {"1:0": ["30", 0], "1:1": ["30", 1]})


def with_controlnet(graph, where="before_encode", node="ControlNetApplyAdvanced", strength=1.0):
    """ControlNet (hint: the input image) on the text conditionings before IP2P Encode, or on its outputs."""
    pos, neg = (["3", 0], ["4", 0]) if where == "before_encode" else (["5", 0], ["5", 1])
    nodes = {"40": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CONTROLNET}}}
    if node == "ControlNetApplyAdvanced":
        nodes["41"] = {"class_type": node, "inputs": {
            "positive": pos, "negative": neg, "control_net": ["40", 0], "image": ["2", 0], "strength": strength,
            "start_percent": 0.0, "end_percent": 1.0}}
        reroute = {f"{pos[0]}:{pos[1]}": ["41", 0], f"{neg[0]}:{neg[1]}": ["41", 1]}
    else:  # the older node: the positive conditioning only
        nodes["41"] = {"class_type": node, "inputs": {
            "conditioning": pos, "control_net": ["40", 0], "image": ["2", 0], "strength": strength}}
        reroute = {f"{pos[0]}:{pos[1]}": ["41", 0]}
    return insert(graph, nodes, reroute)


@pytest.fixture(scope="module")
def plain(host):
    """The unpatched pack edit every patch is compared against."""
    return saved_latent(host, pack_graph())


def assert_takes_effect_and_matches_native(host, plain, patch):
    pack = saved_latent(host, patch(pack_graph()))
    native = saved_latent(host, patch(native_graph(host)))
    assert relative_diff(pack, plain) > CHANGED, "the patch did not change the edit"
    assert relative_diff(pack, native) < KERNEL_RTOL
    return pack


# -- LoRA --------------------------------------------------------------------------------

def test_lora_on_the_unet_changes_the_edit_as_in_the_native_path(host, plain):
    assert_takes_effect_and_matches_native(host, plain, lambda g: with_lora(g, LORA_CORE))


def test_lora_on_unet_and_text_encoder_changes_the_edit_as_in_the_native_path(host, plain):
    both = assert_takes_effect_and_matches_native(host, plain, lambda g: with_lora(g, LORA_IP2P, 1.0, 1.0))
    unet_only = saved_latent(host, with_lora(pack_graph(), LORA_IP2P))
    assert relative_diff(both, unet_only) > CHANGED, "the text encoder part of the LoRA did nothing"


def test_lora_strength_zero_is_the_plain_model(host, plain):
    assert relative_diff(saved_latent(host, with_lora(pack_graph(), LORA_IP2P, 0.0, 0.0)), plain) < SAME_HOST_RTOL


def test_conv_in_lora_for_eight_channels_applies(host):
    core = saved_latent(host, with_lora(pack_graph(), LORA_CORE))
    with_conv_in = saved_latent(host, with_lora(pack_graph(), LORA_IP2P))
    assert relative_diff(with_conv_in, core) > CHANGED


def test_plain_sd15_lora_skips_the_four_channel_conv_in_with_a_logged_note(host):
    """A LoRA trained on a text-to-image SD1.5 model has a 4-channel conv_in. Both hosts log
    "ERROR lora diffusion_model.input_blocks.0.0.weight shape '[320, 8, 3, 3]' is invalid for
    input of size 11520", leave that weight as it is and apply the rest: the edit runs."""
    core = saved_latent(host, with_lora(pack_graph(), LORA_CORE, strength_model=0.9))
    log_before = host.log_path.stat().st_size
    plain_sd15 = saved_latent(host, with_lora(pack_graph(), LORA_PLAIN_SD15, strength_model=0.9))
    log = host.log_path.read_bytes()[log_before:].decode("utf-8", "replace")
    assert relative_diff(plain_sd15, core) < SAME_HOST_RTOL, "the 4-channel conv_in LoRA was applied somehow"
    note = [line for line in log.splitlines() if "input_blocks.0.0.weight" in line]
    assert note, f"no log line about the skipped conv_in key; log:\n{log}"
    # (LoraLoaderModelOnly leaves the text encoder keys unloaded and says so: expected.)
    assert "not loaded: lora_unet_" not in log, "some UNet keys of the LoRA were not mapped to the model"


# -- ControlNet --------------------------------------------------------------------------

def test_controlnet_changes_the_edit_as_in_the_native_path(host, plain):
    # Applied before IP2P Encode, the control reaches all three predictions in both paths
    # (the native guider's unconditional input is the raw negative text).
    assert_takes_effect_and_matches_native(host, plain, with_controlnet)


def test_controlnet_after_ip2p_encode_is_the_same_as_before(host):
    before = saved_latent(host, with_controlnet(pack_graph(), "before_encode"))
    after = saved_latent(host, with_controlnet(pack_graph(), "after_encode"))
    assert relative_diff(after, before) < SAME_HOST_RTOL


def test_controlnet_on_the_positive_only_reaches_all_predictions_as_in_the_native_path(host, plain):
    # The older ControlNetApply marks its control "apply to uncond": the host's condition
    # preparation copies it from the guider's "positive" conditioning to the others.
    pack = assert_takes_effect_and_matches_native(
        host, plain, lambda g: with_controlnet(g, "after_encode", node="ControlNetApply"))
    both = saved_latent(host, with_controlnet(pack_graph(), "after_encode"))
    assert relative_diff(pack, both) < SAME_HOST_RTOL


# -- attention patches -------------------------------------------------------------------

def image_prompt(graph, routing, weight=1.0):
    return patched_model(graph, "IP2PTestImagePromptAttn2", weight=weight, routing=routing)


def test_attn2_replacement_changes_the_edit_as_in_the_native_path(host, plain):
    assert_takes_effect_and_matches_native(host, plain, lambda g: image_prompt(g, "whole_batch"))


def test_ip_adapter_style_image_prompt_reaches_only_the_instruction_prediction(host, plain):
    """IP-Adapter picks its tokens with `(cond, uncond)[i] for i in cond_or_uncond`: the pack
    must hand model patches 0 for the instruction prediction and 1 for the predictions made
    from the negative conditioning (image only, unconditional), never another index. The
    probe's uncond tokens are zeros, so only the instruction prediction may change: with
    text_cfg 0 (which ignores that prediction) the edit is the unpatched one."""
    patched = saved_latent(host, image_prompt(pack_graph(), "cond_or_uncond"))
    assert relative_diff(patched, plain) > CHANGED
    plain_no_text = saved_latent(host, pack_graph(text_cfg=0.0))
    patched_no_text = saved_latent(host, image_prompt(pack_graph(text_cfg=0.0), "cond_or_uncond"))
    # The probe's attn2 runs the host's sub-quadratic kernel, the unpatched pack PyTorch's.
    assert relative_diff(patched_no_text, plain_no_text) < KERNEL_RTOL


# -- CFG hooks ---------------------------------------------------------------------------

def test_rescale_cfg_changes_the_edit_as_in_the_native_path(host, plain):
    assert_takes_effect_and_matches_native(host, plain, lambda g: patched_model(g, "RescaleCFG", multiplier=0.7))


def test_perturbed_attention_guidance_changes_the_edit_as_in_the_native_path(host, plain):
    if "PerturbedAttentionGuidance" not in host.node_types():
        pytest.skip("host has no PerturbedAttentionGuidance")
    assert_takes_effect_and_matches_native(
        host, plain, lambda g: patched_model(g, "PerturbedAttentionGuidance", scale=3.0))


def test_self_attention_guidance_changes_the_edit(host, plain):
    # No equality with the native guider: SAG blurs with the attention map of the first batch
    # entry labelled uncond (1). The native guider labels only the image-only prediction 1; the
    # pack labels both predictions made from the negative conditioning 1, so the maps differ
    # (by 0.08 of the latent scale here).
    graph = patched_model(pack_graph(), "SelfAttentionGuidance", scale=0.5, blur_sigma=2.0)
    first, again = saved_latent(host, graph), saved_latent(host, graph)
    assert relative_diff(first, plain) > CHANGED
    assert torch.equal(first, again)


def test_pre_cfg_hooks_get_instruction_and_image_predictions_as_cond_and_uncond(host):
    """The hosts' guiders hand pre-CFG hooks conds_out = [cond, uncond, ...] with cond_scale
    scaling cond - uncond; for IP2P that is [instruction, image only, unconditional] with the
    text scale. The probe hook replaces cond by uncond: the text term vanishes, as with
    text_cfg 0. (The hosts' own DualCFGGuider calls no pre-CFG hooks.)"""
    no_text = saved_latent(host, pack_graph(text_cfg=0.0))
    hooked = saved_latent(host, patched_model(pack_graph(), "IP2PTestPreCFGNoGuidance"))
    assert relative_diff(hooked, no_text) < SAME_HOST_RTOL


# -- model sampling ----------------------------------------------------------------------

@pytest.mark.parametrize("sampling, zsnr", [("eps", False), ("v_prediction", False), ("v_prediction", True)])
def test_model_sampling_switch_matches_the_native_path(host, plain, sampling, zsnr):
    def patch(graph):
        return patched_model(graph, "ModelSamplingDiscrete", sampling=sampling, zsnr=zsnr)
    if sampling == "eps" and not zsnr:  # the checkpoint's own setting: a no-op
        pack = saved_latent(host, patch(pack_graph()))
        assert relative_diff(pack, plain) < SAME_HOST_RTOL
        assert relative_diff(pack, saved_latent(host, patch(native_graph(host)))) < KERNEL_RTOL
    else:
        assert_takes_effect_and_matches_native(host, plain, patch)


# -- the shipped workflow ----------------------------------------------------------------

def test_lora_controlnet_workflow_applies_both(host):
    """workflows/ip2p_lora_controlnet.api.json (also run by test_frontend_workflows): turning the
    LoRA or the ControlNet down to 0 changes its image, so both are in effect."""
    workflow = with_inputs(load_workflow(REPO_ROOT / "workflows" / "ip2p_lora_controlnet.api.json"),
                           checkpoint=IP2P_CKPT, image=SMALL_IMAGE, seed=1, steps=3)
    kinds = {node["class_type"]: node["inputs"] for node in workflow.values()}
    assert kinds["LoraLoader"]["lora_name"] == LORA_IP2P and kinds["ControlNetLoader"]["control_net_name"] == CONTROLNET

    def image(lora=None, control=None):
        if lora is not None:
            kinds["LoraLoader"].update(strength_model=lora, strength_clip=lora)
        if control is not None:
            kinds["ControlNetApplyAdvanced"]["strength"] = control
        (out,) = saved_images(host, workflow)
        return out.astype(int)

    both = image()
    no_lora = image(lora=0.0)
    no_control = image(lora=0.8, control=0.0)
    assert abs(both - no_lora).mean() > 1.0 and abs(both - no_control).mean() > 1.0
