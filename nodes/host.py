"""Where the two ComfyUI hosts the pack supports differ, and nothing else.

The hosts are upstream ComfyUI and the packaged `comfyui` 0.0.1 from PyPI (2024). They share the
sampling, model-management, patching and attention APIs the pack uses; they differ in:
- how a node learns that progress bars are off (`progress_bar_disabled`);
- what the VAE encodes: the 2024 host samples the posterior, upstream takes its mode (`encode_mode`);
- loading: setting a model's dtype while loading (upstream only: `can_set_dtype`), loading a
  whole checkpoint from a state dict, the name of the UNet loader and of the UNet folder
  (`load_checkpoint`, `load_checkpoint_state_dict`, `load_unet`, `unet_folder`);
- where the weight-patch arithmetic lives: `comfy.lora` upstream, the ModelPatcher in 2024
  (`evaluate_patch`);
- upstream's `optimized_attention_override`, by which a pack chooses the attention kernel of
  every attention (`attention_kernel_chosen`, `override_attention_kernel`).
"""
import contextlib
import inspect
from typing import Optional

import comfy.ldm.modules.attention
import comfy.lora
import comfy.model_detection
import comfy.sd
import comfy.utils
import folder_paths
import torch

from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.formats.diffusers_to_ldm import UNET_PREFIX
from .checkpoint_parts import clip_and_vae


def progress_bar_disabled() -> bool:
    """Whether the host asked for no progress bar, as its own KSampler node checks it."""
    try:
        from comfy.execution_context import current_execution_context  # packaged 2024 host
    except ImportError:
        return not comfy.utils.PROGRESS_BAR_ENABLED
    return not current_execution_context().server.receive_all_progress_notifications


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


def can_set_dtype() -> bool:
    """Whether the host's loaders take a dtype for the model (upstream, ComfyUI 0.3 or later)."""
    return "model_options" in inspect.signature(comfy.sd.load_checkpoint_guess_config).parameters


def _model_options(dtype: Optional[torch.dtype]) -> dict:
    return {} if dtype is None else {"model_options": {"dtype": dtype}}


def load_checkpoint(path: str, dtype: Optional[torch.dtype], embedding_directory):
    """MODEL, CLIP, VAE of a single-file checkpoint, through the host's own loader; `dtype` (None: the
    host's choice) only where `can_set_dtype()`."""
    return comfy.sd.load_checkpoint_guess_config(path, output_vae=True, output_clip=True,
                                                 embedding_directory=embedding_directory, **_model_options(dtype))[:3]


def load_checkpoint_state_dict(state: dict, dtype: Optional[torch.dtype], embedding_directory):
    """MODEL, CLIP, VAE of a single-file checkpoint held in memory (the demo model, expanded); `state` is used up.

    Upstream loads it as it loads a file. The 2024 host's checkpoint loader reads files only, but
    the parts it is made of take state dicts: they are called here as that loader calls them,
    with its UNet-only loader for the model, so nothing is written to disk.
    """
    if hasattr(comfy.sd, "load_state_dict_guess_config"):
        return comfy.sd.load_state_dict_guess_config(state, output_vae=True, output_clip=True,
                                                     embedding_directory=embedding_directory,
                                                     **_model_options(dtype))[:3]
    config = comfy.model_detection.model_config_from_unet(state, UNET_PREFIX)
    clip, vae = clip_and_vae(config, state, embedding_directory)
    # What is left: the UNet, and any keys beside it that say how the model samples.
    model = comfy.sd.load_unet_state_dict(comfy.utils.state_dict_prefix_replace(state, {UNET_PREFIX: ""}))
    return model, clip, vae


def load_unet(state_dict: dict, dtype: Optional[torch.dtype], name: str):
    """A MODEL from a UNet state dict (LDM layout, or diffusers layout the host knows)."""
    options = _model_options(dtype)
    if hasattr(comfy.sd, "load_diffusion_model_state_dict"):
        model = comfy.sd.load_diffusion_model_state_dict(state_dict, **options)
    else:  # the 2024 host
        model = comfy.sd.load_unet_state_dict(state_dict)
    if model is None:
        raise IP2PUserError(f"ComfyUI does not recognise the UNet in {name} as a model it supports "
                            "(unknown key layout or architecture)")
    return model


def unet_folder() -> str:
    """Where UNet-only files live: models/diffusion_models upstream, models/unet in 2024."""
    return "diffusion_models" if "diffusion_models" in folder_paths.folder_names_and_paths else "unet"


def evaluate_patch(model, value, shape: tuple[int, ...]) -> torch.Tensor:
    """What a patch value adds to a weight of `shape`, computed by the host (float32, on the CPU)."""
    patches = [(1.0, value, 1.0, None, None)]
    zero = torch.zeros(shape, dtype=torch.float32)
    calculate = getattr(comfy.lora, "calculate_weight", None)  # upstream; the 2024 host has it on the patcher
    return calculate(patches, zero, "") if calculate else model.calculate_weight(patches, zero, "")


def override_attention_kernel(model, kernel) -> bool:
    """Sends every attention of `model` (a clone the caller owns) through `kernel(func, *args, **kwargs)`
    by upstream's transformer option; False where the host has none (the 2024 host)."""
    if not hasattr(comfy.ldm.modules.attention, "wrap_attn"):
        return False
    model.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = kernel
    return True


def attention_kernel_chosen(model) -> bool:
    """Whether a pack chose the attention kernel for every attention of `model` (upstream's
    `optimized_attention_override` transformer option; the 2024 host has no such option)."""
    return "optimized_attention_override" in model.model_options.get("transformer_options", {})
