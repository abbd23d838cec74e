"""IP2P Encode nodes: put the input image into the conditionings, encoded once.

Both conditionings carry the image; the sampler derives the third, image-free prediction
from the negative one. Sizes that are not multiples of 8 are resized to the nearest ones
(never cropped), so nothing at the border of the picture is lost.
"""
import logging

import torch

from ..ip2p_core.latents import fit_to_latent_grid
from . import host
from .conditioning import IMAGE_KEY, with_values

log = logging.getLogger(__name__)

IMAGE_TOOLTIP = ("The image to edit. Sides that are not multiples of 8 are resized to the nearest "
                 "multiple of 8 (by under 4 pixels), never cropped.")


def encode_image_into(positive, negative, vae, image):
    """Encodes `image` once and returns (positive, negative, empty latent) carrying it."""
    pixels = fit_to_latent_grid(image)
    if pixels.shape[1:3] != image.shape[1:3]:
        log.info("IP2P Encode: resized %dx%d to %dx%d (multiples of 8 for the VAE)",
                 image.shape[2], image.shape[1], pixels.shape[2], pixels.shape[1])
    latent = host.encode_mode(vae, pixels)
    return (with_values(positive, **{IMAGE_KEY: latent}),
            with_values(negative, **{IMAGE_KEY: latent}),
            {"samples": torch.zeros_like(latent)})


class IP2PEncode:
    DESCRIPTION = ("Encodes the image to edit with the VAE and attaches it to both conditionings, "
                   "as InstructPix2Pix models expect.")
    CATEGORY = "InstructPix2Pix/conditioning"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = (
        "The instruction, carrying the input image: connect to the IP2P Sampler's positive.",
        "The negative (usually empty) text, carrying the input image: connect to the IP2P Sampler's negative.",
        "An empty latent of the working size, for SamplerCustomAdvanced with the IP2P Guider. "
        "The IP2P Sampler does not need it.",
    )
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING", {"tooltip": "The edit instruction, from a CLIP Text Encode node."}),
            "negative": ("CONDITIONING", {"tooltip": "What to steer away from; an empty prompt for the usual IP2P behaviour."}),
            "vae": ("VAE", {"tooltip": "The VAE of the IP2P model."}),
            "image": ("IMAGE", {"tooltip": IMAGE_TOOLTIP}),
        }}

    def encode(self, positive, negative, vae, image):
        return encode_image_into(positive, negative, vae, image)


class IP2PEncodeText(IP2PEncode):
    DESCRIPTION = ("Encodes the instruction, the negative text and the image in one node: "
                   "the shortest way to a dual-CFG edit.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip": ("CLIP", {"tooltip": "The text encoder of the IP2P model."}),
            "vae": ("VAE", {"tooltip": "The VAE of the IP2P model."}),
            "image": ("IMAGE", {"tooltip": IMAGE_TOOLTIP}),
            "instruction": ("STRING", {"multiline": True, "default": "turn the sky into a sunset",
                                       "tooltip": "What to change, as an instruction: 'make it winter', 'add fireworks'."}),
            "negative": ("STRING", {"multiline": True, "default": "",
                                    "tooltip": "Leave empty for the standard IP2P guidance; text here replaces the "
                                               "empty prompt in the image-only and unconditional predictions."}),
        }}

    def encode(self, clip, vae, image, instruction, negative):
        return encode_image_into(_text(clip, instruction), _text(clip, negative), vae, image)


def _text(clip, text):
    """A CONDITIONING for `text`, as ComfyUI's CLIP Text Encode builds it."""
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]
