"""What the nodes read from and write into a ComfyUI MODEL (a ModelPatcher), the same on both hosts:
whether the host built it as an IP2P model, and its diffusion model's weights, shapes and key patches.
"""
import comfy.model_management

from ..ip2p_core.errors import IP2PUserError

DIFFUSION_PREFIX = "diffusion_model."


def require_ip2p_model(model, subject: str) -> None:
    """Refuses a MODEL the host did not build as IP2P (the model classes that take the image latent),
    before anything runs with it. `subject` names where it came from: an input, or a loader's file."""
    if not hasattr(model.model, "process_ip2p_image_in"):
        raise IP2PUserError(
            f"{subject} is a {type(model.model).__name__} in ComfyUI, not an InstructPix2Pix model: ComfyUI builds "
            "one (a UNet that also takes the input image's latent) only from an IP2P model of the SD1.5 or SDXL "
            "family, and UltraEdit's SD3 models only through the pack's IP2P loaders. Choose such a model in an "
            "IP2P loader node and use its MODEL")


def reads_mask(model) -> bool:
    """Whether the model takes the edit's mask as input channels (UltraEdit's mask model,
    `nodes/ultraedit.py`): it localises the edit itself, so samplers leave the latent unmasked
    (as its authors sample) and IP2P Decode keeps the input outside the mask."""
    return getattr(model.model, "takes_mask", False)


def unet_shapes(model) -> dict[str, tuple[int, ...]]:
    """The diffusion model's weight shapes by key (without the `diffusion_model.` prefix); nothing is copied."""
    return {k: tuple(v.shape) for k, v in model.model.diffusion_model.state_dict().items()}


def unet_patches(model) -> dict:
    """Each diffusion-model weight with the patches it carries, in the host's format for a nested patch
    (what ComfyUI's ModelMergeAdd adds to a clone), by key without the `diffusion_model.` prefix."""
    return {k[len(DIFFUSION_PREFIX):]: v for k, v in model.get_key_patches(DIFFUSION_PREFIX).items()}


def difference_patch(minuend, subtrahend) -> list:
    """A nested patch whose value is `minuend - subtrahend` (two `unet_patches` entries).

    Both hosts compute a nested patch as its first entry's weight, copied (in float32 upstream), with
    the rest of its entries applied; a patch tuple is (strength, value, strength_model, offset,
    function), of which the 2024 host reads the first three.
    """
    return list(minuend) + [(-1.0, list(subtrahend), 1.0, None, None)]


def set_unet_weights(model, weights: dict, name: str) -> None:
    """Replaces the weights of a MODEL the pack has just loaded (nothing else holds it) by `weights`."""
    diffusion_model = model.model.diffusion_model
    missing, unexpected = diffusion_model.load_state_dict(weights, strict=False)
    parameters = dict(diffusion_model.named_parameters())
    missing = [k for k in missing if k in parameters]
    if missing or unexpected:
        raise IP2PUserError(f"{name}: the weights to load do not fit the model ComfyUI built "
                            f"(missing {missing[:3]}, unexpected {list(unexpected)[:3]})")


def unet_state_dict(model) -> dict:
    """The diffusion model's weights with the MODEL's patches (LoRAs, merges) applied, on the CPU."""
    comfy.model_management.load_models_gpu([model], force_patch_weights=True)
    return {k: v.detach().to("cpu", copy=True) for k, v in model.model.diffusion_model.state_dict().items()}
