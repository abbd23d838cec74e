"""IP2P Color Match: pulls an edit's colours back to the source picture's."""
from ..ip2p_core.inference.color import match_color


class IP2PColorMatch:
    DESCRIPTION = ("Matches the edited image's colour statistics (CIELAB mean and spread) to the source image's, "
                   "against the colour and contrast drift IP2P edits often show. Leave it out for edits that are "
                   "meant to change colours ('make it night').")
    CATEGORY = "InstructPix2Pix/image"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The edited image(s) with the source's colour statistics.",)
    FUNCTION = "match"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {"tooltip": "The edited image(s)."}),
            "reference": ("IMAGE", {"tooltip": "The source image: one for all, or one per edited image."}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                   "tooltip": "1 = the source's statistics exactly; 0 = unchanged."}),
        }}

    def match(self, image, reference, strength):
        return (match_color(image, reference, strength),)
