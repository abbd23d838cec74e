"""Loaders for IP2P models in the shapes users have them: single files, diffusers folders, UNet-only files.

Each file is inspected before loading so a wrong model is refused with a sentence instead
of a shape error deep inside sampling; loading itself is ComfyUI's, so the model is a
ModelPatcher under the host's model management (LoRAs, offloading, low-VRAM modes).
IP2P UNets in diffusers layout (SD1.5 and SDXL family) are converted to the LDM layout
ComfyUI detects for any size of model; UltraEdit's SD3 transformers to ComfyUI's MMDiT layout,
built through the pack's config of ComfyUI's SD3 (`nodes/ultraedit.py`).
"""
import logging
import os
from pathlib import Path

import comfy.sd
import comfy.utils
import folder_paths
import torch

from ..ip2p_core import demo_model
from ..ip2p_core.errors import IP2PUserError
from ..ip2p_core.formats.checkpoint_info import (
    read_state_dict,
    read_tensor_shapes,
    require_ip2p_unet,
)
from ..ip2p_core.formats.diffusers_folder import find_parts
from ..ip2p_core.formats.diffusers_to_ldm import (
    UNET_PREFIX,
    VAE_PREFIX,
    infer_unet_config,
    tiny_vae_to_ldm,
    unet_to_ldm,
)
from ..ip2p_core.formats.ema_weights import CHOICES as EMA_CHOICES
from ..ip2p_core.formats.ema_weights import ema_names
from ..ip2p_core.formats.latents import Family
from ..ip2p_core.formats.mmdit_layout import diffusers_sd3_to_mmdit, is_diffusers_sd3
from . import host
from .checkpoint_parts import clip_and_vae
from .model_access import require_ip2p_model, set_unet_weights
from .ultraedit import load_ultraedit, ultraedit_config

log = logging.getLogger(__name__)
OUTPUT_TOOLTIPS = ("The IP2P diffusion model (an 8-channel UNet, or UltraEdit's 32/48-channel SD3 transformer).",
                   "The text encoder, for the edit instruction.",
                   "The VAE: encodes the input image and decodes the result.")


def _path(folder: str, name: str) -> Path:
    path = folder_paths.get_full_path(folder, name)
    if path is None or not Path(path).exists():
        raise IP2PUserError(f"'{name}' was not found in models/{folder}: put it there (or fix the broken link) "
                            "and refresh the node list")
    return Path(path)


WEIGHT_DTYPES = {"default": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
WEIGHT_DTYPE_INPUTS = {"weight_dtype": (list(WEIGHT_DTYPES), {
    "default": "default",
    "tooltip": "Precision of the diffusion model's weights. default: what ComfyUI's model management picks "
               "for this device; fp16/bf16 halve the memory (ComfyUI 0.3 or later)."})}


def _dtype(weight_dtype: str):
    """The torch dtype a weight_dtype choice names (None: the host's choice), if the host can set one."""
    dtype = WEIGHT_DTYPES[weight_dtype]
    if dtype is not None and not host.can_set_dtype():
        raise IP2PUserError(f"weight_dtype '{weight_dtype}' needs a ComfyUI that can set a model's dtype when "
                            "loading (0.3 or later): choose 'default' here, or update ComfyUI")
    return dtype


def _ip2p_model(model, name: str):
    """`model`, loaded from `name`, once the host is known to have built it as IP2P."""
    require_ip2p_model(model, f"the model in '{name}'")
    return model


# Keys beside the UNet's that tell the host how the model samples (CosXL: edm_vpred.sigma_max).
SAMPLING_KEYS = ("edm_vpred.", "edm_mean", "edm_std", "v_pred", "ztsnr")


def _unet_weights(state_dict: dict, name: str) -> dict:
    """The UNet's weights in a layout the host detects, with the sampling markers kept.

    A UNet-only file saved from a checkpoint keeps the `model.diffusion_model.` prefix; the
    hosts strip it but also drop `edm_vpred.*`, which turns CosXL into an EPS model silently.
    Diffusers UNets become LDM layout: the hosts detect SD1.5 IP2P only in that layout, and
    SDXL IP2P in diffusers layout only at exactly the full-size config.
    """
    if any(k.startswith(UNET_PREFIX) for k in state_dict):
        state_dict = {k[len(UNET_PREFIX):] if k.startswith(UNET_PREFIX) else k: v
                      for k, v in state_dict.items() if k.startswith((UNET_PREFIX,) + SAMPLING_KEYS)}
    if "conv_in.weight" not in state_dict:
        return state_dict
    try:
        return unet_to_ldm(state_dict, infer_unet_config(state_dict.keys()), prefix="")
    except KeyError as exc:
        raise IP2PUserError(f"{name}: unknown diffusers UNet layout ({exc.args[0]})") from None


class _WholeModelLoader:
    """What the loaders returning MODEL, CLIP and VAE share."""
    CATEGORY = "InstructPix2Pix/loaders"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("model", "clip", "vae")
    OUTPUT_TOOLTIPS = OUTPUT_TOOLTIPS
    FUNCTION = "load"


class IP2PCheckpointLoader(_WholeModelLoader):
    DESCRIPTION = ("Loads an InstructPix2Pix checkpoint (single file, LDM layout) from models/checkpoints. "
                   "Refuses ordinary 4-channel SD checkpoints with a message saying what to use instead.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (_checkpoint_names(), {
                "tooltip": "An InstructPix2Pix checkpoint in models/checkpoints (e.g. instruct-pix2pix-00-22000."
                           f"safetensors, or cosxl_edit.safetensors). {demo_model.CHECKPOINT_NAME} is the small "
                           "demo model that comes with the pack: it edits 64-pixel drawings of shapes ('make the "
                           "square red'), to check an install in seconds.",
            }),
        }, "optional": {**WEIGHT_DTYPE_INPUTS, "unet_weights": (list(EMA_CHOICES), {
            "default": "auto",
            "tooltip": "Checkpoints from the InstructPix2Pix authors' training code carry two UNets: the trained "
                       "weights and their moving average (EMA), which the authors sampled with. auto: the EMA "
                       "weights when the file has a complete copy (said in the log), else the only UNet; ema: "
                       "require them; non-ema: the trained weights, what ComfyUI's Load Checkpoint uses."})}}

    def load(self, ckpt_name, weight_dtype="default", unet_weights="auto"):
        if _is_shipped_demo(ckpt_name):
            model, clip, vae = host.load_checkpoint_state_dict(demo_model.load_state_dict(), _dtype(weight_dtype),
                                                               folder_paths.get_folder_paths("embeddings"))
            log.info("IP2P: loaded the pack's demo model %s", ckpt_name)
            return _ip2p_model(model, ckpt_name), clip, vae
        path = _path("checkpoints", ckpt_name)
        shapes = read_tensor_shapes(path)
        shape = require_ip2p_unet(path, shapes)
        if shape.transformer:
            return _ultraedit_checkpoint(path, _dtype(weight_dtype))
        ema = ema_names(shapes, unet_weights, ckpt_name)
        model, clip, vae = host.load_checkpoint(str(path), _dtype(weight_dtype),
                                                folder_paths.get_folder_paths("embeddings"))
        if ema:
            weights = read_state_dict(path, ema.values())
            set_unet_weights(model, {k[len(UNET_PREFIX):]: weights[v] for k, v in ema.items()}, ckpt_name)
            log.info("IP2P: %s: sampling with its EMA weights (model_ema.*), as the InstructPix2Pix authors did; "
                     "unet_weights 'non-ema' loads model.diffusion_model.* instead", ckpt_name)
        log.info("IP2P: loaded %s (%s, %s)", ckpt_name, type(model.model).__name__,
                 shape.family.name if shape.family else "unknown family")
        return _ip2p_model(model, ckpt_name), clip, vae


def _ultraedit_checkpoint(path: Path, dtype):
    """MODEL, CLIP, VAE of an UltraEdit single file (SD3 checkpoint layout: the transformer under
    model.diffusion_model., text encoders under text_encoders., the VAE under first_stage_model.)."""
    state = comfy.utils.load_torch_file(str(path), safe_load=True)
    config = ultraedit_config(state, UNET_PREFIX)
    clip, vae = clip_and_vae(config, state, folder_paths.get_folder_paths("embeddings"))
    model = load_ultraedit(_transformer_weights(state, path.name), dtype, path.name)
    log.info("IP2P: loaded %s (UltraEdit, %d input channels)", path.name, config.unet_config["in_channels"])
    return _ip2p_model(model, path.name), clip, vae


def _transformer_weights(state_dict: dict, name: str) -> dict:
    """An SD3 transformer's weights in ComfyUI's MMDiT layout, from a checkpoint, a transformer-only
    file in that layout, or diffusers' SD3Transformer2DModel layout."""
    if any(k.startswith(UNET_PREFIX) for k in state_dict):
        return {k[len(UNET_PREFIX):]: v for k, v in state_dict.items() if k.startswith(UNET_PREFIX)}
    if not is_diffusers_sd3(state_dict):
        return state_dict
    try:
        return diffusers_sd3_to_mmdit(state_dict)
    except KeyError as exc:
        raise IP2PUserError(f"{name}: unknown diffusers SD3 transformer layout ({exc.args[0]})") from None


def _checkpoint_names() -> list:
    """models/checkpoints, and the demo model that ships with the pack (unless a file there has its name)."""
    names = folder_paths.get_filename_list("checkpoints")
    return names if demo_model.CHECKPOINT_NAME in names else names + [demo_model.CHECKPOINT_NAME]


def _is_shipped_demo(name: str) -> bool:
    return name == demo_model.CHECKPOINT_NAME and folder_paths.get_full_path("checkpoints", name) is None


class IP2PUNetLoader:
    DESCRIPTION = ("Loads an InstructPix2Pix UNet-only file (LDM or diffusers key layout, fp32/fp16/bf16), or an "
                   "UltraEdit SD3 transformer-only file, from models/diffusion_models (models/unet on older "
                   "ComfyUI). Pair it with the model's CLIP and VAE from ComfyUI's Load CLIP (Triple CLIP Loader "
                   "for UltraEdit) and Load VAE nodes.")
    CATEGORY = "InstructPix2Pix/loaders"
    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = OUTPUT_TOOLTIPS[:1]
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "unet_name": (folder_paths.get_filename_list(host.unet_folder()), {
                "tooltip": "An IP2P UNet file, e.g. a diffusers unet/diffusion_pytorch_model.safetensors renamed, "
                           "or an UltraEdit transformer/diffusion_pytorch_model.safetensors renamed.",
            }),
        }, "optional": WEIGHT_DTYPE_INPUTS}

    def load(self, unet_name, weight_dtype="default"):
        path = _path(host.unet_folder(), unet_name)
        return (_ip2p_model(_denoiser(path, unet_name, _dtype(weight_dtype)), unet_name),)


def _denoiser(path: Path, name: str, dtype):
    """The MODEL of a UNet-only or transformer-only file (any layout the loaders take)."""
    shape = require_ip2p_unet(path)
    state_dict = comfy.utils.load_torch_file(str(path), safe_load=True)
    if shape.transformer:
        return load_ultraedit(_transformer_weights(state_dict, name), dtype, name)
    return host.load_unet(_unet_weights(state_dict, name), dtype, name)


class IP2PDiffusersLoader(_WholeModelLoader):
    DESCRIPTION = ("Loads an InstructPix2Pix model saved as a diffusers folder (model_index.json, unet/ or "
                   "transformer/, vae/, text_encoder/...) from models/diffusers, e.g. MagicBrush, "
                   "timbrooks/instruct-pix2pix or UltraEdit's SD3_UltraEdit_w_mask.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_path": (_diffusers_folders(), {"tooltip": "A diffusers model folder in models/diffusers."}),
        }, "optional": WEIGHT_DTYPE_INPUTS}

    def load(self, model_path, weight_dtype="default"):
        folder = _diffusers_folder(model_path)
        parts = find_parts(folder)
        name = f"{model_path}/{parts.denoiser.parent.name}"
        try:
            require_ip2p_unet(parts.denoiser)
        except IP2PUserError as exc:
            raise IP2PUserError(f"{name}: {exc}") from None
        model = _ip2p_model(_denoiser(parts.denoiser, name, _dtype(weight_dtype)), model_path)
        # One text encoder file for SD1.5; two (L and G) make the host build SDXL's, unless told SD3's
        # (CLIP-L and G, with T5 when the folder has it).
        clip_type = comfy.sd.CLIPType.SD3 if parts.is_sd3 else comfy.sd.CLIPType.STABLE_DIFFUSION
        clip = comfy.sd.load_clip([str(p) for p in parts.text_encoders], clip_type=clip_type,
                                  embedding_directory=folder_paths.get_folder_paths("embeddings"))
        vae = comfy.sd.VAE(sd=_vae_weights(comfy.utils.load_torch_file(str(parts.vae), safe_load=True), parts))
        return model, clip, vae


def _vae_weights(state_dict: dict, parts) -> dict:
    """A diffusers VAE's weights as ComfyUI reads them: AutoencoderKL's it maps itself; an
    AutoencoderTiny (TAESD, as the pack's demo recipe writes) becomes TAESD's checkpoint keys."""
    if parts.vae_config.get("_class_name") != "AutoencoderTiny":
        return state_dict
    family = Family.SDXL if parts.is_sdxl else Family.SD15
    scale = family.value.scaling_factor / parts.vae_config.get("scaling_factor", 1.0)
    return {k[len(VAE_PREFIX):]: v for k, v in tiny_vae_to_ldm(state_dict, scale).items()}


def _diffusers_folder(name: str) -> Path:
    for root in folder_paths.get_folder_paths("diffusers"):
        if (Path(root) / name).is_dir():
            return Path(root) / name
    raise IP2PUserError(f"'{name}' was not found in models/diffusers: put the model folder there and refresh "
                        "the node list")


def _diffusers_folders() -> list:
    """Folders under models/diffusers that hold a model_index.json (symlinked folders included)."""
    found = []
    for root in folder_paths.get_folder_paths("diffusers"):
        for folder, subfolders, files in os.walk(root, followlinks=True):
            if "model_index.json" in files:
                found.append(os.path.relpath(folder, root))
                subfolders.clear()  # unet/, vae/... are parts of this model, not models
    return sorted(found)
