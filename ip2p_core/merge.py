"""Add-difference merge: turn any SD fine-tune into an instruction-editing model.

IP2P + (custom - base) * strength moves the IP2P UNet by what the fine-tune learned on top
of its base. `conv_in` is 8 channels in IP2P and 4 in SD: the difference lands on the
first four (the noisy latent's channels), as A1111 merges it; the image channels keep
the IP2P weights. ComfyUI's own ModelSubtract/ModelAdd skip that layer entirely.
"""
from typing import Mapping

from torch import Tensor

from .errors import IP2PUserError

CONV_IN_SUFFIX = "input_blocks.0.0.weight"


def add_difference(ip2p: Mapping[str, Tensor], custom: Mapping[str, Tensor], base: Mapping[str, Tensor],
                   strength: float) -> dict[str, Tensor]:
    """`ip2p + (custom - base) * strength`, key by key, in the IP2P weights' dtype."""
    _check_same_model(custom, base, "custom", "base")
    missing = sorted(k for k in custom if k not in ip2p)
    if missing:
        raise IP2PUserError(f"the custom model has {len(missing)} weights the IP2P model lacks (e.g. {missing[0]}): "
                            "both must be the same base architecture (e.g. SD1.5 with SD1.5 IP2P)")
    merged = dict(ip2p)
    for key, weight in custom.items():
        target = ip2p[key]
        delta = (weight.float() - base[key].float()) * strength
        if target.shape == delta.shape:
            merged[key] = (target.float() + delta).to(target.dtype)
        elif key.endswith(CONV_IN_SUFFIX) and target.shape[0] == delta.shape[0] and target.shape[2:] == delta.shape[2:]:
            widened = target.float().clone()
            widened[:, :delta.shape[1]] += delta
            merged[key] = widened.to(target.dtype)
        else:
            raise IP2PUserError(f"weight {key} is {tuple(delta.shape)} in the custom model but {tuple(target.shape)} "
                                "in the IP2P model: both must be the same base architecture")
    return merged


def _check_same_model(a: Mapping[str, Tensor], b: Mapping[str, Tensor], name_a: str, name_b: str) -> None:
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise IP2PUserError(f"the {name_a} and {name_b} models differ in their weights (e.g. {only[0]}): "
                            "the base must be the model the custom one was fine-tuned from (e.g. SD1.5)")
    for key in a:
        if a[key].shape != b[key].shape:
            raise IP2PUserError(f"weight {key} is {tuple(a[key].shape)} in the {name_a} model but "
                                f"{tuple(b[key].shape)} in the {name_b} model: use the custom model's own base")
