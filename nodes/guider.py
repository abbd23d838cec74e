"""The dual-CFG guider: IP2P guidance as a `comfy.samplers.CFGGuider`.

Subclassing the host's guider keeps everything else the host's: model loading and
offloading, conditioning preparation (ControlNets, areas, hooks), batching of the three
predictions into as few model calls as memory allows, and the CFG hooks patches install.
"""
import comfy.samplers

from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.guidance import add_text_guidance
from . import host
from .conditioning import image_latent, with_values, without_image


class DualCFGGuider(comfy.samplers.CFGGuider):
    """Predicts `uncond + image_cfg*(image - uncond) + text_cfg*(full - image)` per step.

    full = positive (instruction + image), image = negative (empty text + image),
    uncond = negative without the image (the model then sees a zero image latent).
    """

    def set_conds(self, positive, negative):
        image_latent(positive, "positive")
        image_latent(negative, "negative")
        image_only = with_values(negative, prompt_type="negative")
        self.inner_set_conds({"positive": positive, "image": image_only, "negative": without_image(negative)})

    def set_cfg(self, text_cfg: float, image_cfg: float):
        self.text_cfg = text_cfg
        self.image_cfg = image_cfg

    def predict_noise(self, x, timestep, model_options=None, seed=None):
        model_options = {} if model_options is None else model_options
        # Same order as the host's own dual-CFG guider, so both batch identically.
        conds = [self.conds.get("negative"), self.conds.get("image"), self.conds.get("positive")]
        out = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        for fn in model_options.get("sampler_pre_cfg_function", []):
            out = fn({"conds": conds, "conds_out": out, "cond_scale": self.text_cfg, "timestep": timestep,
                      "input": x, "sigma": timestep, "model": self.inner_model, "model_options": model_options})
        uncond, image, full = out
        # The image term is a plain two-term CFG: computed by the host so that CFG patches
        # (sampler_cfg_function, post-CFG hooks) apply to it as in the host's dual-CFG guider.
        image_guided = comfy.samplers.cfg_function(self.inner_model, image, uncond, self.image_cfg, x, timestep,
                                                   model_options=model_options, cond=conds[1], uncond=conds[0])
        return add_text_guidance(image_guided, full, image, self.text_cfg)


def require_ip2p_model(model):
    """Refuses a MODEL that cannot use the image latent, before any step is sampled."""
    if not host.is_ip2p_model(model):
        raise IP2PUserError(
            f"the MODEL input is a {type(model.model).__name__}, not an InstructPix2Pix model, so it would "
            "ignore the input image: load an IP2P checkpoint with the IP2P Checkpoint Loader"
        )


TEXT_CFG = ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                      "tooltip": "How strongly to follow the instruction. Higher = stronger edit (paper: 7.5)."})
IMAGE_CFG = ("FLOAT", {"default": 1.5, "min": 0.0, "max": 100.0, "step": 0.05, "round": 0.01,
                       "tooltip": "How closely to keep the input image. Higher = more faithful, weaker edit "
                                  "(paper: 1.5; typical 1.0 to 2.0)."})


class IP2PGuider:
    DESCRIPTION = ("The IP2P dual-CFG guidance as a GUIDER, for SamplerCustomAdvanced "
                   "(any sampler, sigmas and noise nodes).")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("GUIDER",)
    RETURN_NAMES = ("guider",)
    FUNCTION = "get_guider"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "An InstructPix2Pix model."}),
            "positive": ("CONDITIONING", {"tooltip": "From IP2P Encode: the instruction with the image."}),
            "negative": ("CONDITIONING", {"tooltip": "From IP2P Encode: the negative text with the image."}),
            "text_cfg": TEXT_CFG,
            "image_cfg": IMAGE_CFG,
        }}

    def get_guider(self, model, positive, negative, text_cfg, image_cfg):
        return (make_guider(model, positive, negative, text_cfg, image_cfg),)


def make_guider(model, positive, negative, text_cfg: float, image_cfg: float) -> DualCFGGuider:
    require_ip2p_model(model)
    guider = DualCFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(text_cfg, image_cfg)
    return guider
