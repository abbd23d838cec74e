"""The UNet weights the authors sampled with: the EMA copy in checkpoints of the original training layout.

Checkpoints written by the InstructPix2Pix authors' code (`instruct-pix2pix-00-22000.ckpt`, and
fine-tunes made with it) hold two UNets: `model.diffusion_model.*` and its exponential moving
average under `model_ema.*`, named without dots (LitEma). The authors' `edit_cli.py` samples
with the EMA weights (`use_ema: true`), so their published edits come from those; ComfyUI's
loader reads only `model.diffusion_model.*`.
"""
from typing import Iterable, Optional

from ..errors import IP2PUserError
from .diffusers_to_ldm import UNET_PREFIX

EMA_PREFIX = "model_ema."
# Not weights: LitEma's own bookkeeping.
EMA_BOOKKEEPING = ("model_ema.decay", "model_ema.num_updates")
CHOICES = ("auto", "ema", "non-ema")


def ema_name(unet_key: str) -> str:
    """LitEma's name for a UNet weight: `model.diffusion_model.a.0.b` -> `model_ema.diffusion_modela0b`."""
    return EMA_PREFIX + unet_key[len("model."):].replace(".", "")


def ema_names(keys: Iterable[str], choice: str, name: str) -> Optional[dict[str, str]]:
    """UNet key -> EMA key to load instead, or None to keep the file's UNet.

    `auto` takes the EMA copy when it is complete (every UNet weight has its average), `ema`
    requires one, `non-ema` keeps `model.diffusion_model.*`.
    """
    if choice not in CHOICES:
        raise IP2PUserError(f"unet_weights must be one of {', '.join(CHOICES)}, not '{choice}'")
    if choice == "non-ema":
        return None
    keys = set(keys)
    mapping = {k: ema_name(k) for k in keys if k.startswith(UNET_PREFIX)}
    missing = [k for k, ema in mapping.items() if ema not in keys]
    has_any = any(k.startswith(EMA_PREFIX) and k not in EMA_BOOKKEEPING for k in keys)
    if mapping and not missing:
        return mapping
    if choice == "ema":
        what = f"its EMA copy lacks {len(missing)} of the UNet's {len(mapping)} weights (e.g. {ema_name(missing[0])})" \
            if has_any else "it holds no EMA copy of the UNet (model_ema.*)"
        raise IP2PUserError(f"unet_weights 'ema': {name} has no complete EMA weights: {what}. Choose 'auto' "
                            "(EMA when the file has them) or 'non-ema'")
    return None
