"""Fewer UNet passes for dual guidance: per-term guidance intervals and adaptive switch-off.

Expanded, IP2P guidance is `(1 - ic)*uncond + (ic - tc)*image + tc*full` (guidance.py). A term
is turned "off" by the scale that zeroes one prediction's coefficient, so its pass is skipped:
- the image term off: ic = 1, uncond drops: `image + tc*(full - image)`;
- the text term off: tc = ic, image drops: `uncond + ic*(full - uncond)`, CFG on the joint
  condition (the instruction still steers, at the image scale);
- both off: tc = ic = 1, the full prediction alone: one pass.

Two ways to decide when, each per term:
- a guidance interval (Kynkaenniemi et al. 2024, arXiv 2404.07724): the term is on only inside
  its own part of the schedule, given as ComfyUI's timestep ranges are (0 = the first step's
  noise level, 1 = the end), converted to noise levels by the model's own sampling;
- adaptive guidance (Castillo et al. 2023, arXiv 2312.12487): the term switches itself off for
  the rest of the run once its two noise predictions agree (cosine similarity above a threshold).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import IP2PUserError


@dataclass(frozen=True)
class PassSaving:
    """What a sampling run may skip; the default skips nothing (every pass, every step)."""
    text_range: tuple[float, float] = (0.0, 1.0)
    image_range: tuple[float, float] = (0.0, 1.0)
    agreement: float = 1.0  # a term stops once its predictions' cosine similarity exceeds this; 1 = never
    cache_interval: int = 1  # the UNet's deep features are recomputed every this many steps (step_cache.py)
    cache_depth: int = 1

    def __post_init__(self):
        for name, (start, end) in (("text", self.text_range), ("image", self.image_range)):
            if not 0.0 <= start <= end <= 1.0:
                raise IP2PUserError(f"the {name} guidance range must satisfy 0 <= {name}_start <= {name}_end <= 1, "
                                    f"got {start} to {end}")
        if not 0.0 < self.agreement <= 1.0:
            raise IP2PUserError(f"stop_when_agree must be above 0 and at most 1 (1 = never stop), got {self.agreement}")


def term_scales(text_cfg: float, image_cfg: float, text_on: bool, image_on: bool) -> tuple[float, float]:
    """(text_cfg, image_cfg) with the terms that are off set so that their pass drops."""
    if not image_on:
        image_cfg = 1.0
    if not text_on:
        text_cfg = image_cfg
    return text_cfg, image_cfg


def predictions_agree(x: Tensor, a: Tensor, b: Tensor, threshold: float) -> bool:
    """Whether the noise predictions `x - a` and `x - b` (denoised predictions at the same x
    and sigma; the sigma cancels) have cosine similarity above `threshold` for every sample."""
    eps_a, eps_b = (x - a).flatten(1).double(), (x - b).flatten(1).double()
    return bool((torch.nn.functional.cosine_similarity(eps_a, eps_b, dim=1) > threshold).all())


class PassPlan:
    """One sampling run: which terms are on at each model call, and the adaptive switch-offs."""

    def __init__(self, saving: PassSaving, percent_to_sigma: Callable[[float], float]):
        self.saving = saving
        self._ranges = {term: (float(percent_to_sigma(start)), float(percent_to_sigma(end)))
                        for term, (start, end) in (("text", saving.text_range), ("image", saving.image_range))}
        self.agreed = {"text": False, "image": False}
        self.on = {"text": True, "image": True}

    def scales(self, sigma: float, text_cfg: float, image_cfg: float) -> tuple[float, float]:
        for term, (high, low) in self._ranges.items():
            self.on[term] = low <= sigma <= high and not self.agreed[term]
        return term_scales(text_cfg, image_cfg, self.on["text"], self.on["image"])

    def observe(self, x: Tensor, full: Optional[Tensor], image: Optional[Tensor], uncond: Optional[Tensor]) -> None:
        """After a model call: a term whose two predictions (None = not computed) agree stops.
        With the text term off, the image term's conditioned side is the full prediction."""
        threshold = self.saving.agreement
        if threshold >= 1.0:
            return
        if self.on["text"] and full is not None and image is not None:
            self.agreed["text"] = predictions_agree(x, full, image, threshold)
        conditioned = image if image is not None else full
        if self.on["image"] and conditioned is not None and uncond is not None:
            self.agreed["image"] = predictions_agree(x, conditioned, uncond, threshold)


# Named settings for the IP2P Fewer Passes node, chosen with benchmarks/fewer_passes.py on the demo
# model's pairs; what each costs and saves: benchmarks/RESULTS.md, "Fewer UNet passes".
PRESETS: dict[str, PassSaving] = {
    "faithful": PassSaving(),
    "balanced": PassSaving(agreement=0.99),
    "fast": PassSaving(agreement=0.995, cache_interval=2),
}
