"""IP2P Decode: VAE decode that returns the edit at exactly the input image's size."""
from ..ip2p_core.inference.framing import Framing, unframe
from ..ip2p_core.inference.masks import composite
from .conditioning import FRAMING_KEY, MASK_KEY, SOURCE_KEY


class IP2PDecode:
    DESCRIPTION = ("Decodes an IP2P Sampler latent and undoes IP2P Encode's framing (padding to multiples of 8, "
                   "working resolution), so the result has exactly the input image's size and aspect ratio. "
                   "For masked edits it keeps the input's pixels outside the mask.")
    CATEGORY = "InstructPix2Pix/latent"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The edited image at the input's size.",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "The IP2P Sampler's output (a latent without framing is decoded as is)."}),
            "vae": ("VAE", {"tooltip": "The VAE of the IP2P model."}),
        }, "optional": {
            "keep_outside_mask": ("BOOLEAN", {"default": True,
                                              "tooltip": "Masked edits: outside the mask, return the input's exact "
                                                         "pixels rather than their VAE round trip (the decoder mixes "
                                                         "neighbouring latents, so the edit would bleed slightly)."}),
        }}

    def decode(self, samples, vae, keep_outside_mask=True):
        images = vae.decode(samples["samples"])
        if keep_outside_mask and samples.get(MASK_KEY) is not None and samples.get(SOURCE_KEY) is not None:
            images = composite(images, samples[SOURCE_KEY], samples[MASK_KEY])
        framing = samples.get(FRAMING_KEY)
        return (unframe(images, Framing.from_dict(framing)) if framing else images,)
