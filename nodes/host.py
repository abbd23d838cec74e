"""The one place that knows how the ComfyUI hosts we support differ.

Upstream ComfyUI (2025) and the packaged `comfyui` from PyPI (2024) share the sampling and
model-management APIs the pack uses, but differ in how progress bars are switched and in
whether the VAE encodes the posterior's mode or a sample. It also reads which attention
kernel the host picked, which both hosts decide at import time from their flags.
"""
import contextlib
import inspect
from types import SimpleNamespace

import comfy.ldm.modules.attention
import comfy.lora
import comfy.model_detection
import comfy.model_management
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
import torch
from comfy.cli_args import args

from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.formats.diffusers_to_ldm import UNET_PREFIX


def progress_bar_disabled() -> bool:
    """Whether the host asked for no progress bar, as its own KSampler node checks it."""
    try:
        from comfy.execution_context import current_execution_context  # packaged 2024 host
    except ImportError:
        return not comfy.utils.PROGRESS_BAR_ENABLED
    return not current_execution_context().server.receive_all_progress_notifications


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


def encode_mode(vae, pixels):
    """VAE-encodes to the posterior's mode, the latent IP2P models were trained with.

    Upstream's VAE already returns the mode; the 2024 host samples the posterior by default,
    which would make the conditioning image noisy and the same seed give different edits.
    """
    regularizer = getattr(vae.first_stage_model, "regularization", None)
    with _attribute(regularizer, "sample", False):
        return vae.encode(pixels)


@contextlib.contextmanager
def _attribute(obj, name, value):
    if obj is None or not hasattr(obj, name):
        yield
        return
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


WEIGHT_DTYPES = {"default": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
WEIGHT_DTYPE_INPUTS = {"weight_dtype": (list(WEIGHT_DTYPES), {
    "default": "default",
    "tooltip": "Precision of the diffusion model's weights. default: what ComfyUI's model management picks "
               "for this device; fp16/bf16 halve the memory (ComfyUI 0.3 or later)."})}


def _model_options(weight_dtype: str) -> dict:
    dtype = WEIGHT_DTYPES[weight_dtype]
    if dtype is None:
        return {}
    if not _has_model_options():
        raise IP2PUserError(f"weight_dtype '{weight_dtype}' needs a ComfyUI that can set a model's dtype when "
                            "loading (0.3 or later): choose 'default' here, or update ComfyUI")
    return {"dtype": dtype}


def _has_model_options() -> bool:
    return "model_options" in inspect.signature(comfy.sd.load_checkpoint_guess_config).parameters


def load_checkpoint(path: str, weight_dtype: str, embedding_directory):
    """MODEL, CLIP, VAE of a single-file checkpoint, through the host's own loader."""
    options = _model_options(weight_dtype)
    extra = {"model_options": options} if options else {}
    return comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True,
                                                 embedding_directory=embedding_directory, **extra)[:3]


def load_checkpoint_state_dict(state: dict, weight_dtype: str, embedding_directory):
    """MODEL, CLIP, VAE of a single-file checkpoint held in memory (the demo model, expanded); `state` is used up.

    Upstream loads it as it loads a file. The 2024 host's checkpoint loader reads files only, but
    the parts it is made of take state dicts: they are called here as that loader calls them,
    with its UNet-only loader for the model, so nothing is written to disk.
    """
    options = _model_options(weight_dtype)
    if hasattr(comfy.sd, "load_state_dict_guess_config"):
        extra = {"model_options": options} if options else {}
        return comfy.sd.load_state_dict_guess_config(state, output_vae=True, output_clip=True,
                                                     embedding_directory=embedding_directory, **extra)[:3]
    config = comfy.model_detection.model_config_from_unet(state, UNET_PREFIX)
    vae_weights = comfy.utils.state_dict_prefix_replace(state, {k: "" for k in config.vae_key_prefix},
                                                        filter_keys=True)
    vae = comfy.sd.VAE(sd=config.process_vae_state_dict(vae_weights))
    clip = comfy.sd.CLIP(config.clip_target(state_dict=state), embedding_directory=embedding_directory)
    clip.load_sd(config.process_clip_state_dict(state), full_model=True)
    # What is left: the UNet, and any keys beside it that say how the model samples.
    model = comfy.sd.load_unet_state_dict(comfy.utils.state_dict_prefix_replace(state, {UNET_PREFIX: ""}))
    return model, clip, vae


def load_unet(state_dict: dict, weight_dtype: str, name: str):
    """A MODEL from a UNet state dict (LDM layout, or diffusers layout the host knows)."""
    options = _model_options(weight_dtype)
    if hasattr(comfy.sd, "load_diffusion_model_state_dict"):
        model = comfy.sd.load_diffusion_model_state_dict(state_dict, model_options=options)
    else:  # the 2024 host
        model = comfy.sd.load_unet_state_dict(state_dict)
    if model is None:
        raise IP2PUserError(f"ComfyUI does not recognise the UNet in {name} as a model it supports "
                            "(unknown key layout or architecture)")
    return model


def unet_folder() -> str:
    """Where UNet-only files live: models/diffusion_models upstream, models/unet in 2024."""
    return "diffusion_models" if "diffusion_models" in folder_paths.folder_names_and_paths else "unet"


def load_clip(paths, embedding_directory):
    """CLIP from HF text encoder files: one for SD1.5, two (L and G) make the host build SDXL's."""
    return comfy.sd.load_clip([str(p) for p in paths], embedding_directory=embedding_directory)


DIFFUSION_PREFIX = "diffusion_model."


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


def evaluate_patch(model, value, shape: tuple[int, ...]) -> torch.Tensor:
    """What a patch value adds to a weight of `shape`, computed by the host (float32, on the CPU)."""
    patches = [(1.0, value, 1.0, None, None)]
    zero = torch.zeros(shape, dtype=torch.float32)
    calculate = getattr(comfy.lora, "calculate_weight", None)  # upstream; the 2024 host has it on the patcher
    return calculate(patches, zero, "") if calculate else model.calculate_weight(patches, zero, "")


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


def runs_sub_quadratic_by_default(model) -> bool:
    """Whether this model's UNet attention runs the host's sub-quadratic kernel on the CPU in
    float32 only because no kernel was chosen.

    On the CPU both hosts pick that kernel at import time unless started with an attention flag
    (--use-pytorch-cross-attention, --use-split-cross-attention, --use-quad-cross-attention, ...);
    a flag is the user's choice and stands, as does the host's choice on a GPU. Other compute
    dtypes keep the kernel that honours the model's attention precision.
    """
    attention = comfy.ldm.modules.attention
    weights = model.model
    return (torch.device(model.load_device).type == "cpu"
            and attention.optimized_attention is attention.attention_sub_quad
            and not args.use_quad_cross_attention
            and (weights.manual_cast_dtype or weights.get_dtype()) == torch.float32)


def pytorch_attention(q, k, v, heads: int):
    """The host's own scaled_dot_product_attention kernel: what --use-pytorch-cross-attention runs."""
    return comfy.ldm.modules.attention.attention_pytorch(q, k, v, heads)


def starts_at_max_noise(model_sampling, sigmas) -> bool:
    """Whether the host's samplers scale the initial noise as for a full denoise at these
    sigmas (KSAMPLER.max_denoise), asked of the host itself since the rule is its own."""
    wrap = SimpleNamespace(inner_model=SimpleNamespace(model_sampling=model_sampling))
    return comfy.samplers.KSAMPLER.max_denoise(None, wrap, sigmas)
