"""Add-difference merge: turn any SD fine-tune into an instruction-editing model.

IP2P + (custom - base) * strength moves the IP2P UNet by what the fine-tune learned on top
of its base. The arithmetic is left to the host, lazily, as key patches on a clone of the
IP2P model (as ComfyUI's own ModelMergeAdd/ModelMergeSubtract do), so merging copies no
weights. This module checks that the three models fit together, from their shapes alone.
`conv_in` is 8 channels in IP2P and 4 in SD: the difference lands on the first four (the
noisy latent's channels), as A1111 merges it; the image channels keep the IP2P weights.
"""
from typing import Mapping, Optional

from ..errors import IP2PUserError

CONV_IN_SUFFIX = "input_blocks.0.0.weight"
Shapes = Mapping[str, tuple[int, ...]]


def check_mergeable(ip2p: Shapes, custom: Shapes, base: Shapes) -> Optional[str]:
    """Raises with the first weight that does not fit; returns the key of a `conv_in` whose
    difference must be widened to the IP2P model's input channels (None if the shapes agree)."""
    if custom.keys() != base.keys():
        only = sorted(custom.keys() ^ base.keys())
        raise IP2PUserError(f"the custom and base models differ in their weights (e.g. {only[0]}): "
                            "the base must be the model the custom one was fine-tuned from (e.g. SD1.5)")
    for key in custom:
        if custom[key] != base[key]:
            raise IP2PUserError(f"weight {key} is {custom[key]} in the custom model but {base[key]} in the base "
                                "model: use the custom model's own base")
    missing = sorted(k for k in custom if k not in ip2p)
    if missing:
        raise IP2PUserError(f"the custom model has {len(missing)} weights the IP2P model lacks (e.g. {missing[0]}): "
                            "both must be the same base architecture (e.g. SD1.5 with SD1.5 IP2P)")
    widened = None
    for key, shape in custom.items():
        target = ip2p[key]
        if shape == target:
            continue
        if key.endswith(CONV_IN_SUFFIX) and len(shape) == 4 and shape[0] == target[0] and shape[2:] == target[2:] \
                and shape[1] < target[1]:
            widened = key
            continue
        raise IP2PUserError(f"weight {key} is {shape} in the custom model but {target} in the IP2P model: both must "
                            "be the same base architecture")
    return widened
