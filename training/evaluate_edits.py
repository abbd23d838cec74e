"""Did an edit do what its instruction asked, and only that? Scores against the drawn target, per edit kind.

The demo model's held-out pairs (`synthetic_shapes`) know their scenes, so an edit is judged
by its pixel error against the exact target (beside that of returning the input unchanged) and
by success, which takes two things: the region the instruction names ended up the colour it
should, read as the nearest of the palette's eight named colours (night edits: of their night
colours), *and* nothing else changed: every shape the instruction does not name, and the
background it does not name, stays within COLLATERAL_TOLERANCE of the target. Recolouring the
wrong shape too, or painting the whole picture, is a failure. Pixel values are in [0, 1] for
errors, 0-255 for colours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageFilter

from .synthetic_shapes import COLORS, EDIT_KINDS, EditPair, Scene, Shape, night_color, shape_mask

EDGE = 2  # pixels kept clear of a region's border, where the VAE blurs any edit
# The largest MSE against the target that a region the instruction does not name may have: about
# 1.5x what a perfect edit keeps of the demo model's VAE rounding, well under what another shape
# turned another colour costs (chosen on validation pairs: benchmarks/RESULTS.md, "The strict score").
COLLATERAL_TOLERANCE = 0.006


@dataclass(frozen=True)
class EditScore:
    kind: str
    held_out_phrasing: bool
    mse: float  # against the target
    identity_mse: float  # of the input unchanged, against the target
    named_change: bool  # the named region took the colour it should
    collateral_mse: float  # against the target, where the instruction names nothing (nan for night: it names all)
    worst_unnamed_mse: float  # the largest MSE of a region the instruction does not name (0: there is none)
    success: bool  # the named change, and no unnamed region over COLLATERAL_TOLERANCE


def score(pair: EditPair, result: Image.Image) -> EditScore:
    size = pair.original.size[0]
    edited, target, original = (_pixels(image, size) for image in (result, pair.edited, pair.original))
    region, expected = _checked_region(pair, size)
    named_change = all(_nearest(edited[mask].mean(axis=0) * 255) == colour for mask, colour in zip(region, expected))
    untouched = ~changed_region(pair, size)
    worst = max((float(((edited - target)[mask] ** 2).mean()) for mask in unnamed_regions(pair, size)), default=0.0)
    return EditScore(
        kind=pair.edit.kind, held_out_phrasing=pair.held_out_phrasing,
        mse=float(((edited - target) ** 2).mean()), identity_mse=float(((original - target) ** 2).mean()),
        named_change=named_change,
        collateral_mse=float(((edited - target)[untouched] ** 2).mean()) if untouched.any() else float("nan"),
        worst_unnamed_mse=worst, success=named_change and worst <= COLLATERAL_TOLERANCE)


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


def unnamed_regions(pair: EditPair, size: int) -> list[np.ndarray]:
    """The regions the instruction does not name, each checked on its own: every shape but the
    named one (a night edit names none: each shape must turn its own night colour), and the
    background where neither the input nor the target has a shape (for recolour, remove, move
    and add), all kept EDGE pixels clear of what the edit changes."""
    untouched = ~changed_region(pair, size)
    edit, before, after = pair.edit, pair.before, pair.after
    shapes = [s for s in after.shapes if s.kind != edit.shape]  # global edits name no shape: ""
    clear = np.ones_like(untouched) if edit.kind == "night" else untouched  # night changes every pixel
    regions = [_inner(shape_mask(s, size)) & clear for s in shapes]
    if edit.kind not in ("background", "night"):
        regions.append(_background(before, size) & _background(after, size) & untouched)
    return [mask for mask in regions if mask.any()]


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


def changed_region(pair: EditPair, size: int) -> np.ndarray:
    """Where the target differs from the input (grown by EDGE): everything else should stay."""
    difference = np.asarray(pair.edited, dtype=np.int16) != np.asarray(pair.original, dtype=np.int16)
    grown = Image.fromarray(difference.any(axis=2).astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * EDGE + 1))
    return np.asarray(grown) > 0


@dataclass(frozen=True)
class Summary:
    pairs: int
    mse: float
    identity_mse: float
    success: float  # strict: the named change and nothing else
    named_change: float  # the named change, whatever else changed
    collateral_mse: Optional[float]  # where the instruction names nothing (None: only night edits)
    ratio: float  # MSE against the target over that of returning the input unchanged


def summarise(scores: list[EditScore]) -> Summary:
    collateral = [s.collateral_mse for s in scores if not np.isnan(s.collateral_mse)]
    mse, identity_mse = float(np.mean([s.mse for s in scores])), float(np.mean([s.identity_mse for s in scores]))
    return Summary(pairs=len(scores), mse=mse, identity_mse=identity_mse,
                   success=float(np.mean([s.success for s in scores])),
                   named_change=float(np.mean([s.named_change for s in scores])),
                   collateral_mse=float(np.mean(collateral)) if collateral else None, ratio=mse / identity_mse)


def summarise_by_kind(scores: list[EditScore]) -> dict[str, Summary]:
    """One summary per edit kind, and "overall": the mean of the kinds' figures, the ratio too (each
    kind counts once, however many pairs it drew), so global edits, whose unchanged input is far
    from the target, do not carry the local ones."""
    drawn = {s.kind for s in scores}
    kinds = {kind: summarise([s for s in scores if s.kind == kind]) for kind in EDIT_KINDS if kind in drawn}
    collateral = [k.collateral_mse for k in kinds.values() if k.collateral_mse is not None]
    overall = Summary(pairs=len(scores), mse=float(np.mean([k.mse for k in kinds.values()])),
                      identity_mse=float(np.mean([k.identity_mse for k in kinds.values()])),
                      success=float(np.mean([k.success for k in kinds.values()])),
                      named_change=float(np.mean([k.named_change for k in kinds.values()])),
                      collateral_mse=float(np.mean(collateral)) if collateral else None,
                      ratio=float(np.mean([k.ratio for k in kinds.values()])))
    return {**kinds, "overall": overall}
