"""diffusers -> LDM key mapping for SDXL-family UNets (SDXL InstructPix2Pix, CosXL Edit).

ComfyUI detects a diffusers-layout SDXL UNet only when its whole config is one it lists
(the full-size SDXL IP2P is, a pruned or distilled one is not), but it detects any
SDXL-shaped UNet in LDM layout; so the loaders convert SDXL folders as they do SD1.5 ones.
SDXL adds one module to the SD1.5 layout, the addition embedding of the pooled text and the
image sizes (diffusers `add_embedding`, LDM `label_emb`); the rest maps as in
`diffusers_to_ldm`. (It is a module of its own because the test-model cache is keyed on
the contents of diffusers_to_ldm.py.)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .diffusers_to_ldm import UNET_PREFIX, unet_to_ldm

ADM_PREFIX = "add_embedding."
# The diffusers names of SDXL's addition embedding, as LDM's label_emb Sequential numbers them.
ADM_MODULES = {"linear_1": "label_emb.0.0", "linear_2": "label_emb.0.2"}


def any_unet_to_ldm(state_dict: Mapping[str, Tensor], config: Mapping[str, Any],
                    prefix: str = UNET_PREFIX) -> dict[str, Tensor]:
    """A diffusers UNet state dict, SD1.5 or SDXL family, in LDM layout with keys prefixed `prefix`.

    Raises KeyError naming the first key without an LDM name.
    """
    out = unet_to_ldm({k: v for k, v in state_dict.items() if not k.startswith(ADM_PREFIX)}, config, prefix)
    for key, value in state_dict.items():
        if key.startswith(ADM_PREFIX):
            module, _, param = key[len(ADM_PREFIX):].rpartition(".")
            if module not in ADM_MODULES:
                raise KeyError(f"no LDM name for UNet key {key!r}")
            out[f"{prefix}{ADM_MODULES[module]}.{param}"] = value
    return out
