"""Making IP2P models from SD ones: widening conv_in, and add-difference merges.

Widening bakes new weights and loads them back through the host, whose detection then
builds its IP2P model class (which concatenates the image latent). A merge is lazy, as
ComfyUI's own merge nodes are: key patches on a clone of the IP2P model, computed when the
model is loaded for sampling, so the merge node itself copies no weights. Either result
works with the IP2P Sampler, LoRAs and the save node like any loaded model.
"""
from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.formats.checkpoint_info import IP2P_IN_CHANNELS
from ..ip2p_core.formats.conv_in import widen_conv_in
from ..ip2p_core.formats.merge import CONV_IN_SUFFIX, check_mergeable
from . import host
from .model_access import (
    DIFFUSION_PREFIX,
    difference_patch,
    require_ip2p_model,
    unet_patches,
    unet_shapes,
    unet_state_dict,
)


def _conv_in_channels(state_dict: dict, which: str) -> int:
    if CONV_IN_SUFFIX not in state_dict:
        raise IP2PUserError(f"the {which} MODEL is not a Stable Diffusion UNet (no {CONV_IN_SUFFIX})")
    return state_dict[CONV_IN_SUFFIX].shape[1]


class IP2PFromSDModel:
    DESCRIPTION = ("Turns a 4-channel Stable Diffusion MODEL into an 8-channel InstructPix2Pix one: conv_in gets "
                   "four more input channels, zero-initialised, so until fine-tuned it computes exactly what the "
                   "SD model did. The starting point for training an IP2P model (save it with IP2P Save Checkpoint).")
    CATEGORY = "InstructPix2Pix/model making"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The widened model, as an IP2P model class.",)
    FUNCTION = "widen"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "An SD1.5 or SDXL model (4 input channels)."})}}

    def widen(self, model):
        weights = unet_state_dict(model)
        channels = _conv_in_channels(weights, "input")
        if channels != 4:
            raise IP2PUserError(f"the MODEL already takes {channels} input channels; only 4-channel SD models "
                                "can be widened (an IP2P model needs nothing here)")
        weights[CONV_IN_SUFFIX] = widen_conv_in(weights[CONV_IN_SUFFIX], IP2P_IN_CHANNELS)
        return (host.load_unet(weights, None, "the widened model"),)


class IP2PAddDifference:
    DESCRIPTION = ("Makes an instruction-editing version of any SD fine-tune: IP2P + (custom - base) x strength. "
                   "conv_in's four image channels keep the IP2P weights; the difference goes to the other four "
                   "(ComfyUI's ModelSubtract/ModelAdd skip that layer entirely). Lazy like ComfyUI's merges: "
                   "no weights are copied until the model is sampled.")
    CATEGORY = "InstructPix2Pix/model making"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The merged IP2P model.",)
    FUNCTION = "merge"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ip2p_model": ("MODEL", {"tooltip": "The InstructPix2Pix model (e.g. instruct-pix2pix-00-22000)."}),
            "custom_model": ("MODEL", {"tooltip": "The SD fine-tune whose look or subject you want to edit with."}),
            "base_model": ("MODEL", {"tooltip": "The model the fine-tune was trained from (e.g. SD1.5 pruned)."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05,
                                   "tooltip": "How much of the fine-tune's difference to add: 1 = all of it."}),
        }}

    def merge(self, ip2p_model, custom_model, base_model, strength):
        require_ip2p_model(ip2p_model, "the ip2p_model input")
        ip2p_shapes = unet_shapes(ip2p_model)
        conv_in = check_mergeable(ip2p_shapes, unet_shapes(custom_model), unet_shapes(base_model))
        custom, base = unet_patches(custom_model), unet_patches(base_model)
        merged = ip2p_model.clone()
        for key in custom:
            difference = difference_patch(custom[key], base[key])
            if key == conv_in:  # 4 channels onto 8: computed now (one layer) and widened with zeros
                narrow = host.evaluate_patch(custom_model, difference, unet_shapes(custom_model)[key])
                difference = (widen_conv_in(narrow, ip2p_shapes[key][1]),)
            merged.add_patches({DIFFUSION_PREFIX + key: difference}, strength, 1.0)
        return (merged,)
