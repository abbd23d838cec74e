"""IP2P Invert: the initial noise from which the sampler would paint the input image back.

The inversion runs the guider backwards with Euler over the sampler's own sigmas, from the
encoded input image, with the image term of the guidance (a source description may stand in
for the empty text). The sampler then starts at what it reached; the NOISE it hands out is that
latent in the form the host's samplers scale (model_sampling.noise_scaling), so it works in the
IP2P Sampler and in SamplerCustomAdvanced alike.

It steps with Euler whatever `sampler_name` says: the name picks the sigmas (some samplers drop
one), a sampler that adds noise is refused, and the guider checks the sampler's run against the
noise. Running the named sampler backwards instead would not invert every deterministic sampler
of the hosts: dpm_fast and dpm_adaptive, for instance, take only the sigmas' range and choose
their own steps.
"""
from types import SimpleNamespace

import comfy.model_management
import comfy.samplers
import torch

from ..ip2p_core.inference.inversion import Inversion, fit_batch, refuse_noise_adding, rising_sigmas
from . import host
from .conditioning import IMAGE_KEY, image_latent, sampling_mask, with_values
from .guider import INVERSION_ATTRIBUTE, make_guider
from .sampler import schedule, start_latent
from .sampling_inputs import IMAGE_CFG, MODEL_AND_CONDITIONINGS, run_inputs


class InvertedNoise:
    """A NOISE, as SamplerCustomAdvanced and the IP2P Sampler take it."""
    seed = 0  # handed to the sampler for noise it adds itself; a sampler that adds noise is refused

    def __init__(self, noise: torch.Tensor, inversion: Inversion):
        self.noise, self.inversion = noise, inversion

    def generate_noise(self, input_latent):
        noise = fit_batch(self.noise, self.inversion, tuple(input_latent["samples"].shape)).clone()
        setattr(noise, INVERSION_ATTRIBUTE, self.inversion)  # the guider checks the sampler's run against it
        return noise


class IP2PInvert:
    DESCRIPTION = ("Inverts the input image: steps the guidance backwards with Euler, over the noise levels the "
                   "sampler will run, from the encoded image to the noise it would be painted back from. Always "
                   "Euler, whatever sampler_name says: sampler_name picks the noise levels and must name a sampler "
                   "that adds no noise. Connect the noise to the IP2P Sampler (or SamplerCustomAdvanced) with the "
                   "same steps, sampler, scheduler and denoise: the edit then starts from the input image's own "
                   "noise instead of random noise (what that keeps of the picture is measured in "
                   "benchmarks/RESULTS.md, 'Inversion on the demo model').")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("NOISE", "LATENT")
    RETURN_NAMES = ("noise", "inverted_latent")
    OUTPUT_TOOLTIPS = ("The inverted noise: connect to the IP2P Sampler's noise input, or SamplerCustomAdvanced's.",
                       "The noisy latent the inversion reached (the sampler's first step starts there), to look at or "
                       "for samplers that take a latent with add_noise off.")
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        run = run_inputs()
        same = "The same as the sampler that uses the noise: "
        return {"required": {
            **MODEL_AND_CONDITIONINGS,
            "steps": (run["steps"][0], {**run["steps"][1], "tooltip": same + "its steps."}),
            "image_cfg": (IMAGE_CFG[0], {**IMAGE_CFG[1], "tooltip": "The image guidance of the inversion: the "
                                         "sampler's image_cfg gives back the input most closely (1 = the image "
                                         "prediction alone, one pass per step)."}),
            "sampler_name": (run["sampler_name"][0], {"default": "euler", "tooltip": same + "its sampler, which "
                                                      "must not add noise (no ancestral or SDE samplers). It sets the "
                                                      "noise levels (some samplers drop one); the inversion itself "
                                                      "always steps with Euler, so another sampler starts from "
                                                      "Euler's inversion, which it does not exactly undo."}),
            "scheduler": (run["scheduler"][0], {**run["scheduler"][1], "tooltip": same + "its scheduler."}),
            "denoise": (run["denoise"][0], {**run["denoise"][1], "tooltip": same + "its denoise."}),
        }, "optional": {
            "source": ("CONDITIONING", {"tooltip": "Optional: a description of the input image (CLIP Text Encode), "
                                                   "used instead of the empty text while inverting."}),
        }}

    def invert(self, model, positive, negative, steps, image_cfg, sampler_name, scheduler, denoise, source=None):
        refuse_noise_adding(sampler_name)  # now, not only when the sampler starts
        image = image_latent(positive, "positive")
        sigmas = schedule(model, steps, sampler_name, scheduler, denoise)
        inversion = Inversion(tuple(float(s) for s in sigmas), tuple(image.shape[1:]))
        described = negative if source is None else with_values(source, **{IMAGE_KEY: image_latent(negative,
                                                                                                   "negative")})
        # The text scale equal to the image scale turns the text term off (fewer_passes.py): the
        # guidance is uncond + image_cfg * (described - uncond).
        guider = make_guider(model, described, negative, image_cfg, image_cfg)
        reached = guider.sample(torch.zeros_like(image), image, comfy.samplers.sampler_object("euler"),
                                rising_sigmas(sigmas), seed=0, disable_pbar=host.progress_bar_disabled())
        reached = reached.to(comfy.model_management.intermediate_device())
        noise = _as_sampler_noise(model, reached, start_latent(image, sampling_mask(positive, model), denoise), sigmas)
        return InvertedNoise(noise, inversion), {"samples": reached}


def _as_sampler_noise(model, reached, start, sigmas):
    """The noise n with noise_scaling(sigma_0, n, start) == reached, in the model's latent space
    (the host scales n by sigma_0, or sqrt(1 + sigma_0^2) at full denoise, and adds the start)."""
    sampling = model.get_model_object("model_sampling")
    to_model = model.model.process_latent_in
    sigma = sigmas[:1].to(reached.device, torch.float32)
    at_max = _starts_at_max_noise(sampling, sigmas)
    offset = sampling.noise_scaling(sigma, torch.zeros_like(start), to_model(start), at_max)
    scale = sampling.noise_scaling(sigma, torch.ones_like(start), torch.zeros_like(start), at_max)
    return (to_model(reached) - offset) / scale


def _starts_at_max_noise(model_sampling, sigmas) -> bool:
    """Whether the host's samplers scale the initial noise as for a full denoise at these
    sigmas (KSAMPLER.max_denoise), asked of the host itself since the rule is its own."""
    wrap = SimpleNamespace(inner_model=SimpleNamespace(model_sampling=model_sampling))
    return comfy.samplers.KSAMPLER.max_denoise(None, wrap, sigmas)
