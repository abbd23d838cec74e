"""IP2P Encode nodes: put the input image into the conditionings, encoded once.

Both conditionings carry the image; the sampler derives the third, image-free prediction
from the negative one. The image is framed for the VAE (optionally scaled to a working
resolution, padded to multiples of 8) and the framing travels with the conditioning, so
IP2P Decode can return the edit at exactly the input's size.
"""
import logging
import math

import torch

from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.inference.framing import LATENT_STRIDE, SD3_MULTIPLE, frame, plan_framing
from ..ip2p_core.inference.masks import check_mask, feather
from . import host
from .conditioning import FRAMING_KEY, IMAGE_KEY, MASK_KEY, MASK_LATENT_KEY, SOURCE_KEY, with_values

log = logging.getLogger(__name__)
SD3_LATENT_CHANNELS = 16  # the VAE of SD3, hence of UltraEdit

IMAGE_TOOLTIP = ("The image (or batch of images) to edit, any size: it is padded to multiples of 8 for the VAE "
                 "(16 for UltraEdit) and IP2P Decode crops the padding off again.")
OPTIONAL_INPUTS = {
    "resolution": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                           "tooltip": "Working resolution as the longest side in pixels (the paper's model was "
                                      "trained at 512). 0 edits at the input's own size. IP2P Decode scales the "
                                      "result back to the input size."}),
    "mask": ("MASK", {"tooltip": "Optional: edit only where the mask is white (same size as the image). Applied "
                                 "while sampling (UltraEdit's mask model reads it as an input instead); IP2P Decode "
                                 "also keeps the input's exact pixels outside it."}),
    "mask_feather": ("INT", {"default": 0, "min": 0, "max": 256,
                             "tooltip": "Softens the mask border by about this many pixels, for a seamless blend."}),
}


def encode_image_into(positive, negative, vae, image, resolution=0, mask=None, mask_feather=0):
    """Encodes `image` once and returns (positive, negative, latent) carrying it."""
    sd3 = vae.latent_channels == SD3_LATENT_CHANNELS
    framing = plan_framing(image.shape[1], image.shape[2], resolution, SD3_MULTIPLE if sd3 else LATENT_STRIDE)
    pixels = frame(image, framing)
    if framing.padded != framing.source:
        log.info("IP2P Encode: %dx%d framed to %dx%d for the VAE", framing.source[1], framing.source[0],
                 framing.padded[1], framing.padded[0])
    latent = host.encode_mode(vae, pixels)
    # The framed pixels travel too: IP2P Decode keeps them outside a mask, drawn here or made later
    # by IP2P Relevance Mask.
    values = {IMAGE_KEY: latent, FRAMING_KEY: framing.to_dict(), SOURCE_KEY: pixels}
    out_latent = {"samples": torch.zeros_like(latent), FRAMING_KEY: framing.to_dict()}
    if mask is not None:
        values[MASK_KEY] = frame(feather(check_mask(mask, image), mask_feather), framing)
        # SamplerCustomAdvanced keeps the latent outside its noise_mask: it must be the image's.
        out_latent.update(samples=latent.clone(), noise_mask=values[MASK_KEY])
    if sd3:
        # UltraEdit's mask model reads the mask as an RGB image through the VAE, white = edit; with
        # no mask, all white (edit anywhere), as its authors give it for free-form edits.
        where = values.get(MASK_KEY, torch.ones_like(pixels[..., 0]))
        values[MASK_LATENT_KEY] = host.encode_mode(vae, where.unsqueeze(-1).expand(*where.shape, 3))
    return with_values(positive, **values), with_values(negative, **values), out_latent


class IP2PEncode:
    DESCRIPTION = ("Encodes the image to edit with the VAE and attaches it to both conditionings, "
                   "as InstructPix2Pix models expect. Optionally a working resolution and a mask.")
    CATEGORY = "InstructPix2Pix/conditioning"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = (
        "The instruction, carrying the input image: connect to the IP2P Sampler's positive.",
        "The negative (usually empty) text, carrying the input image: connect to the IP2P Sampler's negative.",
        "For SamplerCustomAdvanced with the IP2P Guider: an empty latent of the working size (with a mask: "
        "the image's latent and the mask). The IP2P Sampler does not need it.",
    )
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING", {"tooltip": "The edit instruction, from a CLIP Text Encode node."}),
            "negative": ("CONDITIONING", {"tooltip": "What to steer away from; an empty prompt for the usual IP2P behaviour."}),
            "vae": ("VAE", {"tooltip": "The VAE of the IP2P model."}),
            "image": ("IMAGE", {"tooltip": IMAGE_TOOLTIP}),
        }, "optional": OPTIONAL_INPUTS}

    def encode(self, positive, negative, vae, image, resolution=0, mask=None, mask_feather=0):
        return encode_image_into(positive, negative, vae, image, resolution, mask, mask_feather)


class IP2PEncodeText(IP2PEncode):
    DESCRIPTION = ("Encodes the instruction (or one instruction per line, as a batch), the negative text and the "
                   "image in one node: the shortest way to a dual-CFG edit.")

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
        }, "optional": {
            "one_instruction_per_line": ("BOOLEAN", {"default": False,
                                                     "tooltip": "Each non-empty line is its own instruction: one edit "
                                                                "per line, in line order, as one batch."}),
            **OPTIONAL_INPUTS,
        }}

    def encode(self, clip, vae, image, instruction, negative, one_instruction_per_line=False, resolution=0,
               mask=None, mask_feather=0):
        instructions = [instruction]
        if one_instruction_per_line:
            instructions = [line.strip() for line in instruction.splitlines() if line.strip()]
            if not instructions:
                raise IP2PUserError("'one_instruction_per_line' is on but the instruction box has no non-empty "
                                    "line: write one instruction per line")
        positive = _texts(clip, instructions)
        return encode_image_into(positive, _texts(clip, [negative]), vae, image, resolution, mask, mask_feather)


def _texts(clip, texts):
    """One CONDITIONING holding `texts` as a batch, encoded as ComfyUI's CLIP Text Encode does."""
    encoded = [clip.encode_from_tokens(clip.tokenize(text), return_pooled=True) for text in texts]
    tokens = [cond for cond, _ in encoded]
    length = math.lcm(*(t.shape[1] for t in tokens))
    # Long prompts are encoded in 77-token chunks; all are repeated to a common length, as
    # ComfyUI itself does when it batches conditionings of different lengths.
    cond = torch.cat([t.repeat(1, length // t.shape[1], 1) for t in tokens])
    return [[cond, {"pooled_output": torch.cat([pooled for _, pooled in encoded])}]]
