"""IP2P Sampler: the whole dual-CFG edit in one node, like KSampler for IP2P.

The starting latent comes from the conditionings: at denoise 1 pure noise (as diffusers and
the paper), below 1 the encoded input image, so partial edits start from the picture
rather than from an empty latent.
"""
import comfy.model_management
import comfy.sample
import comfy.samplers
import latent_preview
import torch

from . import host
from .conditioning import image_latent
from .guider import IMAGE_CFG, TEXT_CFG, make_guider


class IP2PSampler:
    DESCRIPTION = ("Edits the image carried by the conditionings: three predictions per step (instruction + image, "
                   "image only, neither) combined with the text and image guidance scales.")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The edited latent: decode it with VAE Decode.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "An InstructPix2Pix model, e.g. from IP2P Checkpoint Loader."}),
            "positive": ("CONDITIONING", {"tooltip": "From IP2P Encode: the instruction with the image."}),
            "negative": ("CONDITIONING", {"tooltip": "From IP2P Encode: the negative text with the image."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                             "tooltip": "Noise seed: the same seed and settings give the same edit."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000,
                              "tooltip": "Denoising steps (paper: 100; 20 to 50 is usually enough)."}),
            "text_cfg": TEXT_CFG,
            "image_cfg": IMAGE_CFG,
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"default": "euler_ancestral",
                                                                "tooltip": "Any ComfyUI sampler (paper: Euler ancestral)."}),
            "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"default": "normal", "tooltip": "Any ComfyUI scheduler."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                  "tooltip": "1 = full edit from noise. Below 1 starts from the input image and "
                                             "changes it less."}),
        }}

    def sample(self, model, positive, negative, seed, steps, text_cfg, image_cfg, sampler_name, scheduler, denoise):
        guider = make_guider(model, positive, negative, text_cfg, image_cfg)
        image = image_latent(positive, "positive")
        start = image.clone() if denoise < 1.0 else torch.zeros_like(image)
        sigmas = comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                         scheduler=scheduler, denoise=denoise, model_options=model.model_options).sigmas
        noise = comfy.sample.prepare_noise(start, seed)
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
        samples = guider.sample(noise, start, comfy.samplers.sampler_object(sampler_name), sigmas,
                                callback=callback, disable_pbar=host.progress_bar_disabled(), seed=seed)
        return ({"samples": samples.to(comfy.model_management.intermediate_device())},)
