"""Did an edit do what its instruction asked? Scores against the drawn target, per edit kind.

The demo model's held-out pairs (`synthetic_shapes`) know their scenes, so an edit is judged
two ways: its pixel error against the exact target (beside that of returning the input
unchanged), and whether the region the instruction names ended up the colour it should, read
as the nearest of the palette's eight named colours (night edits: of their night colours).
Pixel values are in [0, 1] for errors, 0-255 for colours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageFilter

from .synthetic_shapes import COLORS, EditPair, Scene, Shape, night_color, shape_mask

EDGE = 2  # pixels kept clear of a region's border, where the VAE blurs any edit


@dataclass(frozen=True)
class EditScore:
    kind: str
    held_out_phrasing: bool
    mse: float  # against the target
    identity_mse: float  # of the input unchanged, against the target
    success: bool  # the named region took the colour it should
    untouched_mse: float  # against the input, where the instruction changes nothing (nan for global edits)


def score(pair: EditPair, result: Image.Image) -> EditScore:
    size = pair.original.size[0]
    edited, target, original = (_pixels(image, size) for image in (result, pair.edited, pair.original))
    region, expected = _checked_region(pair, size)
    untouched = ~_changed(pair, size)
    return EditScore(
        kind=pair.edit.kind, held_out_phrasing=pair.held_out_phrasing,
        mse=float(((edited - target) ** 2).mean()), identity_mse=float(((original - target) ** 2).mean()),
        success=all(_nearest(edited[mask].mean(axis=0) * 255) == colour for mask, colour in zip(region, expected)),
        untouched_mse=float(((edited - original)[untouched] ** 2).mean()) if untouched.any() else float("nan"))


def _pixels(image: Image.Image, size: int) -> np.ndarray:
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


# Night colours are told apart from the day ones too: a dark day colour must not pass for night.
PALETTE = {**COLORS, **{f"night {name}": night_color(rgb) for name, rgb in COLORS.items()}}


def _nearest(rgb: np.ndarray) -> str:
    return min(PALETTE, key=lambda name: float(((np.array(PALETTE[name]) - rgb) ** 2).sum()))


def _inner(mask: np.ndarray) -> np.ndarray:
    """`mask` shrunk by EDGE pixels."""
    image = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(2 * EDGE + 1))
    return np.asarray(image) > 0


def _named(scene: Scene, kind: str) -> Shape:
    return next(s for s in reversed(scene.shapes) if s.kind == kind)


def _background(scene: Scene, size: int) -> np.ndarray:
    covered = np.zeros((size, size), dtype=bool)
    for shape in scene.shapes:
        covered |= shape_mask(shape, size)
    return ~covered


def _checked_region(pair: EditPair, size: int) -> tuple[list[np.ndarray], list[str]]:
    """The regions a successful edit must colour, and the palette name each must read as."""
    edit, before, after = pair.edit, pair.before, pair.after
    if edit.kind in ("recolor", "add"):
        return [_inner(shape_mask(_named(after, edit.shape), size))], [edit.color]
    if edit.kind == "remove":
        return [_inner(shape_mask(_named(before, edit.shape), size))], [before.background]
    if edit.kind == "background":
        return [_inner(_background(after, size))], [after.background]
    if edit.kind == "night":
        return [_inner(_background(after, size))], [f"night {after.background}"]
    old, new = shape_mask(_named(before, edit.shape), size), shape_mask(_named(after, edit.shape), size)
    return [_inner(new), _inner(old & ~new)], [_named(after, edit.shape).color, after.background]


def _changed(pair: EditPair, size: int) -> np.ndarray:
    """Where the target differs from the input (grown by EDGE): everything else should stay."""
    difference = np.asarray(pair.edited, dtype=np.int16) != np.asarray(pair.original, dtype=np.int16)
    grown = Image.fromarray(difference.any(axis=2).astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * EDGE + 1))
    return np.asarray(grown) > 0


@dataclass(frozen=True)
class Summary:
    pairs: int
    mse: float
    identity_mse: float
    success: float
    untouched_mse: Optional[float]

    @property
    def ratio(self) -> float:
        return self.mse / self.identity_mse


def summarise(scores: list[EditScore]) -> Summary:
    untouched = [s.untouched_mse for s in scores if not np.isnan(s.untouched_mse)]
    return Summary(pairs=len(scores), mse=float(np.mean([s.mse for s in scores])),
                   identity_mse=float(np.mean([s.identity_mse for s in scores])),
                   success=float(np.mean([s.success for s in scores])),
                   untouched_mse=float(np.mean(untouched)) if untouched else None)
