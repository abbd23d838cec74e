"""The 4-to-8 channel `conv_in` widening that turns an SD UNet into an IP2P starting point.

The original weights stay in input channels 0-3 and the new image channels start at zero,
so before any fine-tuning the widened UNet computes exactly what the SD model did.
"""
import torch
from torch import Tensor

from ..errors import IP2PUserError
from .checkpoint_info import IP2P_IN_CHANNELS


def widen_conv_in(weight: Tensor, in_channels: int = IP2P_IN_CHANNELS) -> Tensor:
    """A conv weight (out, in, kh, kw) with zero-initialised extra input channels appended."""
    if weight.ndim != 4:
        raise IP2PUserError(f"conv_in weight must have 4 dimensions (out, in, kh, kw), got {tuple(weight.shape)}")
    old = weight.shape[1]
    if old > in_channels:
        raise IP2PUserError(f"conv_in already takes {old} input channels, more than the {in_channels} asked for")
    extra = weight.new_zeros(weight.shape[0], in_channels - old, *weight.shape[2:])
    return torch.cat([weight, extra], dim=1)
