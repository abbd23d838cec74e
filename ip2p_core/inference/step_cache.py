"""Step caching for LDM UNets (DeepCache, Ma et al. 2023, arXiv 2312.00858).

Between neighbouring steps the UNet's deep features barely change; its shallow blocks carry
the detail, and in IP2P the first of them is the one that sees the concatenated image latent.
So a "fill" call runs the whole UNet and keeps the output of the deepest output block that
feeds the shallow ones; for the next `interval - 1` steps a "reuse" call runs only the
`depth` shallow input and output blocks on that kept feature.

The host's own UNet loop stays in charge (ControlNet residuals, block patches, the skip
stack): each deep block is swapped for a copy that holds the same layers (so weight keys,
LoRA patches and device moves are unchanged) and, on a reuse call, yields one stand-in layer
instead of its own: a zero tensor of the shape that block produced when the cache was filled
(whatever the loop does with it is thrown away), or the kept feature at the boundary.
"""
import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterator, Optional

import torch
from torch import nn

from ..errors import IP2PUserError


@dataclass
class _Entry:
    step: int
    kept: dict[str, torch.Tensor] = field(default_factory=dict)
    skipped: dict[str, tuple[torch.Size, torch.dtype, torch.device]] = field(default_factory=dict)
    complete: bool = False


class StepCache:
    """Decides, per UNet call, whether to fill or reuse, and holds what a fill kept.

    Calls are told apart by `key` (which predictions are batched, and the input's shape) and by
    their order among the step's calls with that key (the host may split one step's predictions
    over several calls alike in both): a call whose batch differs from the kept one fills its own
    entry. Steps are counted by the sigma going down; a sigma above the last one starts a new
    sampling run and drops the cache. (A second sampler that continues the schedule below the
    first's last sigma, as split-sigma workflows do, counts as the same run and may reuse the
    first's deep features for up to interval - 1 steps.)
    """

    def __init__(self, interval: int):
        if interval < 1:
            raise IP2PUserError(f"cache_interval must be at least 1, got {interval}")
        self.interval = interval
        self.mode: Optional[str] = None  # "fill" or "reuse" inside a UNet call, None outside
        self._entries: dict[Hashable, _Entry] = {}
        self._entry: Optional[_Entry] = None
        self._last_sigma: Optional[float] = None
        self._step = 0
        self._calls_this_step: Counter = Counter()
        self._transformer_options: Optional[dict] = None

    def begin_call(self, key: Hashable, sigma: float, transformer_options: Optional[dict] = None) -> None:
        if self._last_sigma is None or sigma > self._last_sigma:
            self._entries.clear()
            self._step = 0
            self._calls_this_step.clear()
        elif sigma < self._last_sigma:
            self._step += 1
            self._calls_this_step.clear()
        self._last_sigma = sigma
        key = (key, self._calls_this_step[key])
        self._calls_this_step[key[0]] += 1
        entry = self._entries.get(key)
        if entry is not None and entry.complete and self._step - entry.step < self.interval:
            self.mode, self._entry = "reuse", entry
        else:
            self.mode, self._entry = "fill", _Entry(self._step)
            self._entries[key] = self._entry
        self._transformer_options = transformer_options

    def end_call(self, completed: bool) -> None:
        if self.mode == "fill" and completed:
            self._entry.complete = True
        self.mode, self._entry, self._transformer_options = None, None, None

    def record(self, name: str, output: torch.Tensor, keep: bool) -> torch.Tensor:
        """On a fill: the kept feature at the boundary, else only the shape of the output."""
        if keep:
            self._entry.kept[name] = output.detach()
        else:
            self._entry.skipped[name] = (output.shape, output.dtype, output.device)
        return output

    def stand_in(self, name: str, skipped_transformers: int) -> torch.Tensor:
        """On a reuse: a fresh tensor (patches such as FreeU scale the running tensor in place)
        of what this block produced at the fill, keeping the host's count of transformer layers
        (patches keyed by it) as if the block had run."""
        options = self._transformer_options
        if skipped_transformers and options is not None and "transformer_index" in options:
            options["transformer_index"] += skipped_transformers
        if name in self._entry.kept:
            return self._entry.kept[name].clone()
        shape, dtype, device = self._entry.skipped[name]
        return torch.zeros(shape, dtype=dtype, device=device)


@dataclass(frozen=True)
class DeepBlock:
    path: str  # attribute path under the UNet, e.g. "output_blocks.3"
    block: nn.Sequential
    boundary: bool  # its output is the feature the shallow blocks are given on a reuse


def deep_blocks(unet: nn.Module, depth: int) -> list[DeepBlock]:
    """The blocks a reuse call skips when `depth` input and output blocks stay live."""
    inputs, outputs = getattr(unet, "input_blocks", None), getattr(unet, "output_blocks", None)
    if not isinstance(inputs, nn.ModuleList) or not isinstance(outputs, nn.ModuleList):
        raise IP2PUserError(f"step caching needs a UNet with input and output blocks (SD1.5, SDXL); "
                            f"this model's diffusion model is a {type(unet).__name__}: choose a pass-saving "
                            "setting without it (the 'balanced' preset, or cache_interval 1)")
    if not 1 <= depth < len(inputs):
        raise IP2PUserError(f"cache_depth must be between 1 and {len(inputs) - 1} for this UNet "
                            f"({len(inputs)} input blocks), got {depth}")
    blocks = [DeepBlock(f"input_blocks.{i}", inputs[i], False) for i in range(depth, len(inputs))]
    if getattr(unet, "middle_block", None) is not None:
        blocks.append(DeepBlock("middle_block", unet.middle_block, False))
    last_deep = len(outputs) - depth - 1
    blocks += [DeepBlock(f"output_blocks.{i}", outputs[i], i == last_deep) for i in range(last_deep + 1)]
    return blocks


def cached_block(deep: DeepBlock, cache: StepCache, is_transformer: Callable[[nn.Module], bool]) -> nn.Sequential:
    """A copy of `deep.block` holding the same layers, whose iteration (what the host's UNet
    loop runs) follows the cache's mode."""
    copy = _cached_class(type(deep.block))(*deep.block)
    copy.step_cache = _Wiring(cache, deep.path, deep.boundary, sum(map(is_transformer, deep.block)))
    return copy


@functools.cache
def _cached_class(block_class: type) -> type:
    return type(f"StepCached{block_class.__name__}", (block_class,), {"__iter__": _cached_iter})


@dataclass(frozen=True)
class _Wiring:
    cache: StepCache
    name: str
    boundary: bool
    transformers: int


class _Layer:
    """A plain callable: the host's loop calls it with the running tensor alone."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _cached_iter(self) -> Iterator:
    wiring = self.step_cache
    mode = wiring.cache.mode
    if mode == "reuse":
        yield _Layer(lambda _: wiring.cache.stand_in(wiring.name, wiring.transformers))
        return
    yield from self._modules.values()
    if mode == "fill":
        yield _Layer(lambda x: wiring.cache.record(wiring.name, x, keep=wiring.boundary))
