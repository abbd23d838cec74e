"""IP2P Sampler: the whole dual-CFG edit in one node, like KSampler for IP2P.

The starting latent comes from the conditionings: at denoise 1 pure noise (as diffusers and
the paper), below 1 or with a mask the encoded input image, so partial and masked edits
start from the picture. Batch item i gets the noise of seed + i, so any item can be
re-made alone.
"""
import comfy.model_management
import comfy.sample
import comfy.samplers
import latent_preview
import torch

from ..ip2p_core.errors import IP2PUserError
from . import host
from .conditioning import DECODE_KEYS, image_latent, option, sampling_mask
from .guider import make_guider
from .sampling_inputs import GUIDANCE_OPTIONS, IMAGE_CFG, MODEL_AND_CONDITIONINGS, TEXT_CFG, run_inputs


class IP2PSampler:
    DESCRIPTION = ("Edits the image carried by the conditionings: three predictions per step (instruction + image, "
                   "image only, neither) combined with the text and image guidance scales.")
    CATEGORY = "InstructPix2Pix/sampling"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The edited latent (batch order: image i with instruction i). Decode it with IP2P Decode "
                       "to get the input's exact size back.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        run = run_inputs()
        return {"required": {
            **MODEL_AND_CONDITIONINGS,
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                             "tooltip": "Noise seed: the same seed and settings give the same edit. Batch item i "
                                        "uses seed + i."}),
            "steps": run["steps"],
            "text_cfg": TEXT_CFG,
            "image_cfg": IMAGE_CFG,
            "sampler_name": run["sampler_name"],
            "scheduler": run["scheduler"],
            "denoise": run["denoise"],
        }, "optional": {
            **GUIDANCE_OPTIONS,
            "noise": ("NOISE", {"tooltip": "Optional: the initial noise instead of the seed's, e.g. IP2P Invert's "
                                           "(the edit then starts from the input image's own noise)."}),
        }}

    def sample(self, model, positive, negative, seed, steps, text_cfg, image_cfg, sampler_name, scheduler, denoise,
               text_cfg_schedule=None, image_cfg_schedule=None, guidance_rescale=0.0, fewer_passes=None, noise=None):
        guider = make_guider(model, positive, negative, text_cfg, image_cfg, text_cfg_schedule, image_cfg_schedule,
                             guidance_rescale, fewer_passes)
        image = image_latent(positive, "positive")
        mask = sampling_mask(positive, model)
        batch = edit_batch_size(image.shape[0], positive[0][0].shape[0], negative[0][0].shape[0])
        start = start_latent(image, mask, denoise)
        start = start.repeat(batch // start.shape[0], 1, 1, 1)
        sigmas = schedule(model, steps, sampler_name, scheduler, denoise)
        if noise is None:
            noise = torch.cat([comfy.sample.prepare_noise(start[i:i + 1], seed + i) for i in range(batch)])
        else:
            noise = noise.generate_noise({"samples": start})
        callback = latent_preview.prepare_callback(model, sigmas.shape[-1] - 1)
        samples = guider.sample(noise, start, comfy.samplers.sampler_object(sampler_name), sigmas, denoise_mask=mask,
                                callback=callback, disable_pbar=host.progress_bar_disabled(), seed=seed)
        out = {"samples": samples.to(comfy.model_management.intermediate_device())}
        carried = {key: option(positive, key) for key in DECODE_KEYS}
        out.update({key: value for key, value in carried.items() if value is not None})
        return (out,)


def schedule(model, steps: int, sampler_name: str, scheduler: str, denoise: float):
    """The sigmas the IP2P Sampler runs, as KSampler makes them (the sampler name matters: some
    drop the penultimate sigma)."""
    return comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                   scheduler=scheduler, denoise=denoise, model_options=model.model_options).sigmas


def start_latent(image, mask, denoise: float):
    """Where the edit starts before noise: the input image for a partial or masked edit, else zeros."""
    return image if denoise < 1.0 or mask is not None else torch.zeros_like(image)


def edit_batch_size(images: int, instructions: int, negatives: int) -> int:
    """One edit per image, per instruction, or per matching pair; anything else is ambiguous."""
    batch = max(images, instructions)
    if images not in (1, batch) or instructions not in (1, batch):
        raise IP2PUserError(f"{instructions} instructions for {images} images: give one instruction for all images, "
                            "one image for all instructions, or as many instructions as images")
    if negatives not in (1, batch):
        raise IP2PUserError(f"{negatives} negative prompts for a batch of {batch}: give one negative prompt")
    return batch
