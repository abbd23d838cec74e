"""Reads what a checkpoint file is before any model is built from it.

Loading a 2 GB checkpoint only to fail in `conv_in` with a shape traceback is the most
common IP2P support question; reading tensor shapes first lets a loader say plainly what
the file is and what to do with it.
"""
import logging
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import IP2PUserError
from .latents import Family

log = logging.getLogger(__name__)

IP2P_IN_CHANNELS = 8
# UltraEdit's SD3 transformers: noisy latent, image latent (free-form), and mask latent (the mask model).
ULTRAEDIT_IN_CHANNELS = (32, 48)

# The first conv of the UNet, in the key layouts IP2P weights are published in.
CONV_IN_KEYS = (
    "model.diffusion_model.input_blocks.0.0.weight",  # LDM single file
    "input_blocks.0.0.weight",  # LDM UNet-only
    "conv_in.weight",  # diffusers UNet
)
# The patch embedding of an SD3-family transformer (MMDiT), in the same layouts.
PATCH_EMBED_KEYS = (
    "model.diffusion_model.x_embedder.proj.weight",  # single file
    "x_embedder.proj.weight",  # transformer only
    "pos_embed.proj.weight",  # diffusers SD3Transformer2DModel
)
# Cross-attention key projection: its input width is the text context width.
CONTEXT_KEY_SUFFIXES = ("attn2.to_k.weight",)
COSXL_MARKER = "edm_vpred.sigma_max"


@dataclass(frozen=True)
class UnetShape:
    in_channels: int
    context_dim: Optional[int]
    family: Optional[Family]
    transformer: bool = False  # an SD3-family MMDiT rather than a UNet


def read_tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name to shape, without reading weights where the format allows."""
    def shapes_only(path: Path) -> dict[str, tuple[int, ...]]:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        return {k: tuple(v.shape) for k, v in _torch_load(path).items() if isinstance(v, torch.Tensor)}
    return _read(Path(path), shapes_only)


def read_state_dict(path: Path, keys: Optional[Iterable[str]] = None) -> dict[str, torch.Tensor]:
    """Every tensor of a .safetensors or pickled checkpoint (or those of `keys`), on the CPU."""
    def tensors(path: Path) -> dict[str, torch.Tensor]:
        if path.suffix == ".safetensors":
            if keys is None:
                return load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in keys}
        state = _torch_load(path)
        return {k: state[k] for k in (keys if keys is not None else state) if isinstance(state[k], torch.Tensor)}
    return _read(Path(path), tensors)


def _read(path: Path, reader):
    """`reader(path)`, with a missing or damaged file reported by name instead of a library traceback."""
    if not path.is_file():
        raise IP2PUserError(f"checkpoint file not found: {path}")
    try:
        return reader(path)
    except IP2PUserError:
        raise
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # torch names the function or class it refused to import
            raise _damaged(path, exc) from exc
        raise IP2PUserError(
            f"{path.name} is a pickle holding Python objects besides model weights: unpickling them could run "
            "code stored in the file, so it was not loaded. Use a .safetensors version of the model, or convert "
            "the file with a tool you trust") from None
    except (SafetensorError, OSError, RuntimeError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _damaged(path, exc) from exc


def _damaged(path: Path, exc: Exception) -> IP2PUserError:
    return IP2PUserError(f"cannot read checkpoint {path.name}: the file is damaged or not a model file "
                         f"({type(exc).__name__}: {exc}). Download it again.")


def _torch_load(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        state = torch.load(path, map_location="cpu", weights_only=True)  # legacy non-zip format
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise IP2PUserError(f"{path.name} holds a {type(state).__name__}, not a state dict of model weights")
    return state


def unet_shape(shapes: dict[str, tuple[int, ...]], name: str) -> UnetShape:
    """In-channels, text width and family of the UNet (or SD3 transformer) in a state dict's shapes."""
    conv_in = next((shapes[k] for k in CONV_IN_KEYS if k in shapes), None)
    patch_embed = next((shapes[k] for k in PATCH_EMBED_KEYS if k in shapes), None)
    if conv_in is None and patch_embed is not None and len(patch_embed) == 4:
        in_channels = patch_embed[1]
        family = Family.ULTRAEDIT if in_channels in ULTRAEDIT_IN_CHANNELS else None
        return UnetShape(in_channels=in_channels, context_dim=None, family=family, transformer=True)
    if conv_in is None or len(conv_in) != 4:
        raise IP2PUserError(
            f"{name} has no UNet or SD3 transformer weights this pack knows (looked for "
            f"{', '.join(CONV_IN_KEYS + PATCH_EMBED_KEYS)}): it may be a VAE, a LoRA or a text encoder file"
        )
    context = next((s[1] for k, s in shapes.items() if k.endswith(CONTEXT_KEY_SUFFIXES) and len(s) == 2), None)
    return UnetShape(in_channels=conv_in[1], context_dim=context, family=_family(context, COSXL_MARKER in shapes))


def _family(context_dim: Optional[int], has_edm_marker: bool) -> Optional[Family]:
    if context_dim == 768:
        return Family.SD15
    if context_dim == 2048:
        return Family.COSXL if has_edm_marker else Family.SDXL
    return None


def require_ip2p_unet(path: Path, shapes: Optional[dict[str, tuple[int, ...]]] = None) -> UnetShape:
    """The file's UNet shape (from `shapes` when already read), or an error saying why it is not an IP2P model."""
    path = Path(path)
    shape = unet_shape(read_tensor_shapes(path) if shapes is None else shapes, path.name)
    if shape.transformer:
        if shape.family is Family.ULTRAEDIT:
            return shape
        if shape.in_channels == 16:
            hint = ("it is an ordinary SD3 text-to-image model (16 input channels). Use ComfyUI's Load Checkpoint "
                    "node for it, or load an UltraEdit model (32 or 48 input channels) here")
        else:
            hint = f"its SD3 transformer takes {shape.in_channels} input channels (UltraEdit's take 32 or 48)"
        raise IP2PUserError(f"{path.name} is not an instruction-editing model: {hint}.")
    if shape.in_channels == IP2P_IN_CHANNELS:
        return shape
    if shape.in_channels == 4:
        hint = ("it is an ordinary text-to-image model (4 input channels). Use ComfyUI's Load Checkpoint "
                "node for it, or load an InstructPix2Pix model (8 input channels) here")
    elif shape.in_channels == 9:
        hint = "it is an inpainting model (9 input channels). Use it with ComfyUI's inpaint nodes instead"
    else:
        hint = f"its UNet takes {shape.in_channels} input channels"
    raise IP2PUserError(f"{path.name} is not an InstructPix2Pix model: {hint}.")
