"""What the nodes read from and write into a ComfyUI MODEL (a ModelPatcher), the same on both hosts:
whether the host built it as an IP2P model, and its diffusion model's weights, shapes and key patches.
"""
import comfy.model_management

from ..ip2p_core.errors import IP2PUserError

DIFFUSION_PREFIX = "diffusion_model."


def is_ip2p_model(model) -> bool:
    """Whether the host built an IP2P model class, the ones that concatenate the image latent."""
    return hasattr(model.model, "process_ip2p_image_in")


def require_ip2p_model(model, input_name: str) -> None:
    """Refuses a MODEL the host did not build as IP2P, before anything runs with it."""
    if not is_ip2p_model(model):
        raise IP2PUserError(
            f"the {input_name} input is a {type(model.model).__name__}, not an InstructPix2Pix model (it has no input "
            f"channels for the image): load an IP2P checkpoint with the IP2P Checkpoint Loader and connect it to "
            f"{input_name}")


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
