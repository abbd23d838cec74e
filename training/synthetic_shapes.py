"""Drawn edit pairs whose right answer is known exactly: coloured shapes on plain backgrounds.

Real edit data and weights cannot be had here, so the demo model learns a drawn domain where
every instruction has one exact target: recolour a named shape, remove it, change the
background colour, make the scene night, move a shape, or add one at a named place. Each
edit kind is said several ways, so the model has to follow the words rather than a code; the
last phrasing of each kind, and everyday phrasings (`EVERYDAY_PHRASINGS`), are kept out of
training to test exactly that. Every pair carries its scene, so a scorer can tell *what* an
edit changed (`training.evaluate_edits`).

Three disjoint draws (`SPLIT_SEEDS`): training, validation (where settings, presets, thresholds
and checkpoints are chosen) and test (where figures are reported, and nothing is chosen).
Evaluation scenes (`evaluation_pairs`) vary the shape sizes up to a fifth either side of the
one size the demo recipe's first phase trains on (its second phase varies them too, from
another seed), and draw phrasings no training draw uses.

    python -m training.synthetic_shapes OUT_DIR --count 2000 --size 64 --seed 0
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from .paired_data import INSTRUCTION_FILE

Color = tuple[int, int, int]
COLORS: dict[str, Color] = {
    "red": (220, 40, 40), "orange": (240, 140, 30), "yellow": (240, 210, 40), "green": (40, 170, 60),
    "blue": (40, 90, 220), "purple": (140, 60, 190), "white": (245, 245, 245), "black": (25, 25, 25),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
PLACES = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1), "bottom right": (1, 1)}
# Night: every pixel darker and bluer, by an exact per-channel map (0-255 values).
NIGHT_GAIN, NIGHT_OFFSET = (0.35, 0.40, 0.60), (0, 8, 40)

# The last phrasing of each kind is held out of training.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "recolor": ("make the {shape} {color}", "paint the {shape} {color}", "turn the {shape} {color}",
                "change the {shape} to {color}", "colour the {shape} {color}", "the {shape} should be {color}",
                "recolor the {shape} {color}"),
    "remove": ("remove the {shape}", "delete the {shape}", "erase the {shape}", "take away the {shape}",
               "get rid of the {shape}", "take the {shape} out"),
    "background": ("make the background {color}", "change the background to {color}",
                   "paint the background {color}", "turn the background {color}", "give it a {color} background",
                   "set the background to {color}"),
    "night": ("make it night", "turn it into night", "make it nighttime", "change it to night", "night time",
              "make it look like night"),
    "move": ("move the {shape} {direction}", "shift the {shape} {direction}", "push the {shape} {direction}",
             "nudge the {shape} {direction}", "slide the {shape} {direction}"),
    "add": ("add a {color} {shape} in the {place}", "draw a {color} {shape} in the {place}",
            "put a {color} {shape} in the {place}", "place a {color} {shape} in the {place}",
            "paint a {color} {shape} in the {place}"),
}
EDIT_KINDS = tuple(PHRASINGS)
# How people also say it: never drawn for training, only for evaluation (held-out phrasings).
EVERYDAY_PHRASINGS: dict[str, tuple[str, ...]] = {
    "recolor": ("can you make the {shape} {color}", "{color} {shape} please"),
    "remove": ("make the {shape} disappear", "no {shape}"),
    "background": ("can you make the background {color}", "{color} background please"),
    "night": ("can you make it night", "night please"),
    "move": ("can you move the {shape} {direction}", "{shape} {direction} please"),
    "add": ("can you add a {color} {shape} in the {place}", "{color} {shape} in the {place} please"),
}
# The draws of each split; the recipe trains on "train", nothing is chosen on "test".
SPLIT_SEEDS = {"train": 0, "validation": 1000, "test": 2000}
SIZE_SPREAD = 0.2  # evaluation shapes: up to this fraction smaller or larger than the training size


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    x: int  # top-left corner of the bounding square
    y: int
    size: int

    def overlaps(self, other: "Shape", gap: int = 2) -> bool:
        return not (self.x + self.size + gap <= other.x or other.x + other.size + gap <= self.x
                    or self.y + self.size + gap <= other.y or other.y + other.size + gap <= self.y)

    def inside(self, size: int) -> bool:
        return 0 <= self.x <= size - self.size and 0 <= self.y <= size - self.size


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]
    night: bool = False

    def draw(self, size: int) -> Image.Image:
        image = Image.new("RGB", (size, size), COLORS[self.background])
        canvas = ImageDraw.Draw(image)
        for shape in self.shapes:
            draw_shape(canvas, shape, COLORS[shape.color])
        return night(image) if self.night else image


@dataclass(frozen=True)
class Edit:
    """What an instruction asks for, in the terms a scorer checks."""

    kind: str
    shape: str = ""  # the named shape (recolor, remove, move, add)
    color: str = ""  # the requested colour (recolor, background, add)
    direction: str = ""  # move
    place: str = ""  # add


@dataclass(frozen=True)
class EditPair:
    original: Image.Image
    instruction: str
    edited: Image.Image
    before: Scene
    after: Scene
    edit: Edit
    held_out_phrasing: bool = False


def example_scene() -> Scene:
    """examples/shapes.png: the scene the README's first command edits."""
    return Scene("blue", (Shape("circle", "yellow", 6, 8, 20), Shape("square", "white", 38, 10, 20),
                          Shape("triangle", "green", 22, 38, 20)))


def edit_pair(before: Scene, edit: Edit, size: int = 64) -> EditPair:
    """`before` with `edit` applied as the drawn pairs apply it (recolour, remove, background, night)."""
    if edit.kind == "background":
        after = replace(before, background=edit.color)
    elif edit.kind == "night":
        after = replace(before, night=True)
    else:
        index = next(i for i, s in enumerate(before.shapes) if s.kind == edit.shape)
        after = _replaced(before, index, replace(before.shapes[index], color=edit.color) if edit.kind == "recolor"
                          else None)
    instruction = PHRASINGS[edit.kind][0].format(shape=edit.shape, color=edit.color, direction="", place="")
    return EditPair(before.draw(size), instruction, after.draw(size), before, after, edit)


def draw_shape(canvas: ImageDraw.ImageDraw, shape: Shape, fill) -> None:
    box = (shape.x, shape.y, shape.x + shape.size - 1, shape.y + shape.size - 1)
    if shape.kind == "circle":
        canvas.ellipse(box, fill=fill)
    elif shape.kind == "square":
        canvas.rectangle(box, fill=fill)
    else:
        last = shape.size - 1
        canvas.polygon([(shape.x + last / 2, shape.y), (shape.x, shape.y + last), (shape.x + last, shape.y + last)],
                       fill=fill)


def shape_mask(shape: Shape, size: int) -> np.ndarray:
    """Where `shape` is drawn, as a boolean (size, size) array."""
    mask = Image.new("L", (size, size), 0)
    draw_shape(ImageDraw.Draw(mask), shape, 255)
    return np.asarray(mask) > 0


def night(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    dark = pixels * np.array(NIGHT_GAIN) + np.array(NIGHT_OFFSET)
    return Image.fromarray(np.clip(np.round(dark), 0, 255).astype(np.uint8))


def night_color(color: Color) -> Color:
    return tuple(int(np.clip(round(c * g + o), 0, 255)) for c, g, o in zip(color, NIGHT_GAIN, NIGHT_OFFSET))


def training_phrasings(kind: str) -> tuple[str, ...]:
    return PHRASINGS[kind][:-1]


def held_out_phrasings(kind: str) -> tuple[str, ...]:
    return PHRASINGS[kind][-1:] + EVERYDAY_PHRASINGS[kind]


def make_pair(rng: random.Random, size: int = 64, held_out: bool = False,
              kinds: tuple[str, ...] = EDIT_KINDS, varied: bool = False,
              kind_weights: Optional[dict[str, float]] = None) -> EditPair:
    """One random scene and one random edit of it, both drawn.

    `held_out` False draws only training phrasings; True draws any phrasing, the held-out ones
    included (evaluation). `varied` draws each shape's size within SIZE_SPREAD of the training
    size instead of at it. `kind_weights` draws the kinds in those proportions instead of evenly
    (a kind it leaves out is not drawn).
    """
    if kind_weights is None:
        kind = rng.choice(kinds)
    else:
        kind = rng.choices(kinds, weights=[kind_weights.get(k, 0.0) for k in kinds])[0]
    made = None
    while made is None:  # e.g. no room to move the shape: draw another scene for the same kind of edit
        before = _scene(rng, size, varied)
        made = _EDITS[kind](rng, before, size)
    edit, after = made
    phrasings = training_phrasings(kind) + (held_out_phrasings(kind) if held_out else ())
    template = rng.choice(phrasings)
    instruction = template.format(shape=edit.shape, color=edit.color, direction=edit.direction, place=edit.place)
    return EditPair(before.draw(size), instruction, after.draw(size), before, after, edit,
                    held_out_phrasing=template in held_out_phrasings(kind))


def make_pairs(count: int, seed: int, size: int = 64, held_out: bool = False,
               kinds: tuple[str, ...] = EDIT_KINDS, varied: bool = False,
               kind_weights: Optional[dict[str, float]] = None) -> list[EditPair]:
    rng = random.Random(seed)
    return [make_pair(rng, size, held_out, kinds, varied, kind_weights) for _ in range(count)]


def evaluation_pairs(split: str, count: int, size: int = 64, kinds: tuple[str, ...] = EDIT_KINDS) -> list[EditPair]:
    """The `count` first pairs of the validation or test draw: held-out phrasings among the
    training ones, shape sizes varied."""
    if split not in ("validation", "test"):
        raise ValueError(f"evaluation pairs come from 'validation' or 'test', not {split!r}")
    return make_pairs(count, SPLIT_SEEDS[split], size, held_out=True, kinds=kinds, varied=True)


def write_pair_folder(out: Path, pairs: list[EditPair]) -> Path:
    """The pairs in the triplet-folder layout `training.paired_data` reads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for index, pair in enumerate(pairs):
        folder = out / f"{index:06d}"
        folder.mkdir(exist_ok=True)
        pair.original.save(folder / "original.png")
        pair.edited.save(folder / "edited.png")
        (folder / INSTRUCTION_FILE).write_text(pair.instruction + "\n", encoding="utf-8")
    return out


def _shape_size(size: int) -> int:
    return size * 5 // 16  # 20 px at 64 px


def _scene(rng: random.Random, size: int, varied: bool = False) -> Scene:
    background = rng.choice(list(COLORS))
    count = rng.randint(1, 3)
    kinds = rng.sample(SHAPES, count)  # one of each kind, so "the circle" names one shape
    colors = rng.sample([c for c in COLORS if c != background], count)
    side = _shape_size(size)
    spread = round(side * SIZE_SPREAD) if varied else 0
    while True:
        sides = [side + rng.randint(-spread, spread) if varied else side for _ in kinds]
        shapes = tuple(Shape(kind, color, rng.randint(0, size - s), rng.randint(0, size - s), s)
                       for kind, color, s in zip(kinds, colors, sides))
        if not any(a.overlaps(b) for i, a in enumerate(shapes) for b in shapes[i + 1:]):
            return Scene(background, shapes)


def _pick(rng: random.Random, scene: Scene) -> tuple[int, Shape]:
    index = rng.randrange(len(scene.shapes))
    return index, scene.shapes[index]


def _replaced(scene: Scene, index: int, shape: Shape | None) -> Scene:
    shapes = list(scene.shapes)
    if shape is None:
        del shapes[index]
    else:
        shapes[index] = shape
    return replace(scene, shapes=tuple(shapes))


def _recolor(rng, scene, size):
    index, shape = _pick(rng, scene)
    color = rng.choice([c for c in COLORS if c not in (shape.color, scene.background)])
    return Edit("recolor", shape=shape.kind, color=color), _replaced(scene, index, replace(shape, color=color))


def _remove(rng, scene, size):
    index, shape = _pick(rng, scene)
    return Edit("remove", shape=shape.kind), _replaced(scene, index, None)


def _background(rng, scene, size):
    used = {s.color for s in scene.shapes} | {scene.background}
    color = rng.choice([c for c in COLORS if c not in used])
    return Edit("background", color=color), replace(scene, background=color)


def _night(rng, scene, size):
    return Edit("night"), replace(scene, night=True)


def _move(rng, scene, size):
    index, shape = _pick(rng, scene)
    direction = rng.choice(list(DIRECTIONS))
    dx, dy = DIRECTIONS[direction]
    step = size // 4
    moved = replace(shape, x=shape.x + dx * step, y=shape.y + dy * step)
    others = scene.shapes[:index] + scene.shapes[index + 1:]
    if not moved.inside(size) or any(moved.overlaps(other) for other in others):
        return None
    return Edit("move", shape=shape.kind, direction=direction), _replaced(scene, index, moved)


def _add(rng, scene, size):
    place = rng.choice(list(PLACES))
    column, row = PLACES[place]
    side = _shape_size(size)
    half = size // 2
    kind = rng.choice(SHAPES)
    color = rng.choice([c for c in COLORS if c != scene.background])
    added = Shape(kind, color, column * half + (half - side) // 2, row * half + (half - side) // 2, side)
    if any(added.overlaps(other) for other in scene.shapes):
        return None
    return Edit("add", shape=kind, color=color, place=place), replace(scene, shapes=scene.shapes + (added,))


_EDITS = {"recolor": _recolor, "remove": _remove, "background": _background, "night": _night, "move": _move,
          "add": _add}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.synthetic_shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the pair folders into")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", action="store_true", help="draw the held-out phrasings too (evaluation sets)")
    args = parser.parse_args(argv)
    write_pair_folder(args.out, make_pairs(args.count, args.seed, args.size, args.held_out))


if __name__ == "__main__":
    main()
