"""Guidance scales that change over the sampling steps.

Animation and strong edits often want a different balance early (composition) than late
(detail): e.g. image guidance ramping up so the last steps stay close to the input.
"""
import re
from dataclasses import dataclass
from typing import Sequence

from ..errors import IP2PUserError

KINDS = ("constant", "linear", "list")


@dataclass(frozen=True)
class CfgSchedule:
    kind: str
    start: float
    end: float = 0.0
    values: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise IP2PUserError(f"schedule kind must be one of {', '.join(KINDS)}, got '{self.kind}'")
        if self.kind == "list" and not self.values:
            raise IP2PUserError("a 'list' schedule needs per-step values, e.g. '7.5, 7, 6.5, 6'")

    def per_step(self, steps: int) -> list[float]:
        """The scale used at each of `steps` steps."""
        if self.kind == "constant":
            return [self.start] * steps
        if self.kind == "linear":
            if steps == 1:
                return [self.start]
            return [self.start + (self.end - self.start) * i / (steps - 1) for i in range(steps)]
        if len(self.values) != steps:
            raise IP2PUserError(
                f"the schedule lists {len(self.values)} values but the sampler runs {steps} steps: "
                "give exactly one value per step"
            )
        return list(self.values)


def parse_values(text: str) -> tuple[float, ...]:
    """'7.5, 7, 6.5' or one value per line -> floats, naming any entry that is not a number."""
    values = []
    for token in (t for t in re.split(r"[,\s;]+", text.strip()) if t):
        try:
            values.append(float(token))
        except ValueError:
            raise IP2PUserError(f"'{token}' in the schedule values is not a number") from None
    return tuple(values)


def step_index(sigmas: Sequence[float], sigma: float) -> int:
    """The step a model evaluation at `sigma` belongs to.

    Step i runs from sigmas[i] down to sigmas[i + 1]; samplers that evaluate the model in
    between (Heun, DPM-2) get the scale of the step they are inside.
    """
    for i in range(len(sigmas) - 1):
        if sigma > sigmas[i + 1] or i == len(sigmas) - 2:
            return i
    return 0
