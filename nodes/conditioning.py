"""Reads and writes the image latent that IP2P conditionings carry.

ComfyUI's IP2P model classes look for `concat_latent_image` in each conditioning entry and
concatenate it to the noisy latent (in the family's scale); an entry without it gets a zero
image. Using the host's key keeps our conditionings usable with its own samplers too.
"""
from ..ip2p_core.errors import IP2PUserError

IMAGE_KEY = "concat_latent_image"


def with_values(conditioning, **values):
    """A copy of a CONDITIONING list with keys set on every entry (the input is not mutated)."""
    return [[tensor, {**options, **values}] for tensor, options in conditioning]


def without_image(conditioning):
    """The same conditioning with the image removed: the model then sees a zero image."""
    return [[tensor, {k: v for k, v in options.items() if k != IMAGE_KEY}] for tensor, options in conditioning]


def image_latent(conditioning, input_name: str):
    """The image latent carried by a conditioning, or an error saying how to wire it."""
    for _, options in conditioning:
        if options.get(IMAGE_KEY) is not None:
            return options[IMAGE_KEY]
    raise IP2PUserError(
        f"'{input_name}' carries no input image: connect it from an IP2P Encode node "
        "(or ComfyUI's InstructPixToPixConditioning), not straight from a text encoder"
    )
