"""The dual-CFG guider: IP2P guidance as a `comfy.samplers.CFGGuider`.

Subclassing the host's guider keeps everything else the host's: model loading and
offloading, conditioning preparation (ControlNets, areas, hooks), batching of the
predictions into as few model calls as memory allows, and the CFG hooks patches install.
"""
from typing import Optional

import comfy.samplers

from ..ip2p_core.inference.fewer_passes import PassPlan, PassSaving
from ..ip2p_core.inference.guidance import add_text_guidance, needed_predictions, rescale_guidance
from ..ip2p_core.inference.inversion import check_schedule
from ..ip2p_core.inference.schedule import CfgSchedule, step_index
from .attention import with_pytorch_attention
from .conditioning import image_latent, with_values, without_image
from .model_access import reads_mask, require_ip2p_model
from .sampling_inputs import GUIDANCE_OPTIONS, IMAGE_CFG, MODEL_AND_CONDITIONINGS, TEXT_CFG
from .step_cache import with_step_cache


class DualCFGGuider(comfy.samplers.CFGGuider):
    """Predicts `uncond + image_cfg*(image - uncond) + text_cfg*(full - image)` per step.

    full = positive (instruction + image), image = negative (empty text + image),
    uncond = negative without the image (the model then sees a zero image latent).
    A prediction whose weight is zero at a step is not computed; a PassSaving turns terms off
    (inference/fewer_passes.py) so that more weights are zero.
    """

    def set_conds(self, positive, negative):
        image_latent(positive, "positive")
        image_latent(negative, "negative")
        image_only = with_values(negative, prompt_type="negative")
        self.inner_set_conds({"positive": positive, "image": image_only, "negative": without_image(negative)})

    def set_cfg(self, text_cfg: CfgSchedule, image_cfg: CfgSchedule, rescale: float = 0.0,
                saving: PassSaving = PassSaving()):
        self.text_cfg, self.image_cfg, self.rescale, self.saving = text_cfg, image_cfg, rescale, saving

    def sample(self, noise, latent_image, sampler, sigmas, *args, **kwargs):
        # The scales of each step are fixed here, where the step count is known, so a schedule
        # of the wrong length (or an inverted noise made for other sigmas) fails before the first model call.
        inversion = getattr(noise, INVERSION_ATTRIBUTE, None)
        if inversion is not None:
            check_schedule(inversion, sigmas, _function_name(sampler))
        steps = len(sigmas) - 1
        self.step_sigmas = [float(s) for s in sigmas]
        self.step_scales = list(zip(self.text_cfg.per_step(steps), self.image_cfg.per_step(steps))) if steps else []
        self.plan = PassPlan(self.saving, self.model_patcher.get_model_object("model_sampling").percent_to_sigma)
        if reads_mask(self.model_patcher):  # SamplerCustomAdvanced passes IP2P Encode's mask as noise_mask
            kwargs["denoise_mask"] = None
        return super().sample(noise, latent_image, sampler, sigmas, *args, **kwargs)

    def predict_noise(self, x, timestep, model_options=None, seed=None):
        model_options = {} if model_options is None else model_options
        sigma = float(timestep.max())
        text_cfg, image_cfg = self.plan.scales(sigma, *self.step_scales[step_index(self.step_sigmas, sigma)])
        uncond_needed, image_needed, full_needed = self._needed(text_cfg, image_cfg, model_options)
        # In the hosts' order: [cond, uncond, extra], cond_scale scaling cond - uncond.
        needed = {"positive": full_needed, "image": image_needed, "negative": uncond_needed}
        conds = [self.conds.get(key) if use else None for key, use in needed.items()]
        out = self._predict(conds, x, timestep, model_options)
        for fn in model_options.get("sampler_pre_cfg_function", []):
            out = fn({"conds": conds, "conds_out": out, "cond_scale": text_cfg, "timestep": timestep,
                      "input": x, "sigma": timestep, "model": self.inner_model, "model_options": model_options})
        full, image, uncond = out
        self.plan.observe(x, *(prediction if cond is not None else None for prediction, cond in zip(out, conds)))
        # The image term is a plain two-term CFG: computed by the host so that CFG patches
        # (sampler_cfg_function, post-CFG hooks) apply to it as in the host's dual-CFG guider.
        image_guided = comfy.samplers.cfg_function(self.inner_model, image, uncond, image_cfg, x, timestep,
                                                   model_options=model_options, cond=conds[1], uncond=conds[2])
        denoised = add_text_guidance(image_guided, full, image, text_cfg)
        if self.rescale:
            sigma = timestep.view(-1, *([1] * (x.ndim - 1)))
            eps = rescale_guidance((x - denoised) / sigma, (x - full) / sigma, self.rescale)
            denoised = x - eps * sigma
        return denoised

    def _predict(self, conds, x, timestep, model_options):
        """[full, image, uncond] for conds [positive, image, negative], as one host batch.

        Model patches read `cond_or_uncond` as 0 = made from the positive conditioning, 1 = from
        the negative (IP-Adapter indexes its (cond, uncond) embeddings with it, SAG keeps the
        attention of the 1s). The host numbers the three predictions by position, 0, 1, 2; the
        wrapper shows the model 0, 1, 1 instead, so all three still go to the UNet in one call
        (as memory allows) rather than a batch of two and a batch of one, which costs more per
        step (benchmarks/RESULTS.md).
        """
        options = {**model_options, "model_function_wrapper": _uncond_as_negative(
            model_options.get("model_function_wrapper"))}
        return comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, options)

    def _needed(self, text_cfg, image_cfg, model_options):
        if model_options.get("disable_cfg1_optimization", False):
            return True, True, True
        uncond, image, full = needed_predictions(text_cfg, image_cfg)
        # CFG patches read the image prediction even where its weight is zero; the
        # rescale needs the full one.
        image = image or "sampler_cfg_function" in model_options or bool(model_options.get("sampler_post_cfg_function"))
        return uncond, image, full or bool(self.rescale)


# The attribute IP2P Invert's noise tensors carry what they were made for in (nodes/invert.py).
INVERSION_ATTRIBUTE = "ip2p_inversion"


def _function_name(sampler) -> str:
    """The sampling function of a host sampler object (KSAMPLER), by which its kind is known."""
    return getattr(getattr(sampler, "sampler_function", None), "__name__", type(sampler).__name__)


# calc_cond_batch's index of each conditioning in [positive, image, negative] -> what the
# model is told: 0 = from the positive conditioning, 1 = from the negative.
_COND_OR_UNCOND = {0: 0, 1: 1, 2: 1}


def _uncond_as_negative(inner):
    """A `model_function_wrapper` that relabels the unconditional prediction as an uncond (1),
    then runs the wrapper already installed (if any) or the model."""
    def wrapper(apply_model, args):
        cond_or_uncond = [_COND_OR_UNCOND[i] for i in args["cond_or_uncond"]]
        c = dict(args["c"])  # the host reads its own list back afterwards: never mutate it
        c["transformer_options"] = {**c.get("transformer_options", {}), "cond_or_uncond": cond_or_uncond}
        args = {**args, "c": c, "cond_or_uncond": cond_or_uncond}
        if inner is not None:
            return inner(apply_model, args)
        return apply_model(args["input"], args["timestep"], **c)
    return wrapper


class IP2PGuider:
    DESCRIPTION = ("The IP2P dual-CFG guidance as a GUIDER, for SamplerCustomAdvanced "
                   "(any sampler, sigmas and noise nodes).")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("GUIDER",)
    RETURN_NAMES = ("guider",)
    OUTPUT_TOOLTIPS = ("The dual-CFG guidance: connect to SamplerCustomAdvanced's guider, with IP2P Encode's "
                       "latent as its latent_image.",)
    FUNCTION = "get_guider"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **MODEL_AND_CONDITIONINGS,
            "text_cfg": TEXT_CFG,
            "image_cfg": IMAGE_CFG,
        }, "optional": GUIDANCE_OPTIONS}

    def get_guider(self, model, positive, negative, text_cfg, image_cfg, text_cfg_schedule=None,
                   image_cfg_schedule=None, guidance_rescale=0.0, fewer_passes=None):
        return (make_guider(model, positive, negative, text_cfg, image_cfg, text_cfg_schedule, image_cfg_schedule,
                            guidance_rescale, fewer_passes),)


def make_guider(model, positive, negative, text_cfg: float, image_cfg: float,
                text_cfg_schedule: Optional[CfgSchedule] = None, image_cfg_schedule: Optional[CfgSchedule] = None,
                rescale: float = 0.0, saving: Optional[PassSaving] = None,
                kind: type[DualCFGGuider] = DualCFGGuider) -> DualCFGGuider:
    """The guider the nodes use (`kind`: a subclass that asks the model something else with the same
    conditionings); a connected schedule replaces the constant scale. Its model gets PyTorch attention
    where the host fell back to sub-quadratic on the CPU (nodes/attention.py), and step caching when
    `saving` asks for it."""
    require_ip2p_model(model, "the model input")
    saving = saving or PassSaving()
    guider = kind(with_pytorch_attention(with_step_cache(model, saving.cache_interval, saving.cache_depth)))
    guider.set_conds(positive, negative)
    guider.set_cfg(text_cfg_schedule or CfgSchedule("constant", text_cfg),
                   image_cfg_schedule or CfgSchedule("constant", image_cfg), rescale, saving)
    return guider
