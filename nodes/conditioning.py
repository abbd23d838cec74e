"""Reads and writes the image latent that IP2P conditionings carry.

ComfyUI's IP2P model classes look for `concat_latent_image` in each conditioning entry and
concatenate it to the noisy latent (in the family's scale); an entry without it gets a zero
image. Using the host's key keeps our conditionings usable with its own samplers too.
"""
from ..ip2p_core.errors import IP2PUserError
from .model_access import reads_mask

IMAGE_KEY = "concat_latent_image"
# The pack's own keys: the host passes unknown keys through and its models ignore them.
FRAMING_KEY = "ip2p_framing"  # how the image was padded/scaled, to undo after decoding
MASK_KEY = "ip2p_mask"  # where to edit, at the framed pixel size
SOURCE_KEY = "ip2p_source"  # the framed input pixels, to keep outside the mask after decoding
MASK_LATENT_KEY = "ip2p_mask_latent"  # UltraEdit's mask model: the mask image's unscaled VAE latent
DECODE_ONLY_KEY = "ip2p_mask_at_decoding_only"  # True: the sampler edits everywhere, IP2P Decode keeps the outside
# What the sampler hands on to IP2P Decode in its LATENT.
DECODE_KEYS = (FRAMING_KEY, MASK_KEY, SOURCE_KEY)


def option(conditioning, key):
    """The first value of `key` in a conditioning's entries, or None."""
    return next((options[key] for _, options in conditioning if options.get(key) is not None), None)


def sampling_mask(conditioning, model):
    """The mask the sampler edits inside: None without one, when IP2P Decode alone applies it, or when
    the model reads the mask itself (`reads_mask`)."""
    if reads_mask(model) or option(conditioning, DECODE_ONLY_KEY):
        return None
    return option(conditioning, MASK_KEY)


def with_values(conditioning, **values):
    """A copy of a CONDITIONING list with keys set on every entry (the input is not mutated)."""
    return [[tensor, {**options, **values}] for tensor, options in conditioning]


def without_image(conditioning):
    """The same conditioning with the image (and UltraEdit's mask latent) removed: the model then sees zeros."""
    return [[tensor, {k: v for k, v in options.items() if k not in (IMAGE_KEY, MASK_LATENT_KEY)}]
            for tensor, options in conditioning]


def image_latent(conditioning, input_name: str):
    """The image latent carried by a conditioning, or an error saying how to wire it."""
    latent = option(conditioning, IMAGE_KEY)
    if latent is not None:
        return latent
    raise IP2PUserError(
        f"'{input_name}' carries no input image: connect it from an IP2P Encode node "
        "(or ComfyUI's InstructPixToPixConditioning), not straight from a text encoder"
    )
