"""Synthetic edit pairs a CPU can learn: coloured shapes on plain backgrounds.

Proving that the training recipe works needs a task whose right answer is known exactly and
small enough to learn in minutes: recolour a shape ("make the circle red"), move it ("move
the square left") or remove it ("remove the triangle"). The target is drawn, not generated,
so the pixel error of an edit against it measures the model alone.

    python -m ip2p_core.synthetic_shapes OUT_DIR --count 2000 --size 32 --seed 0
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw

from .paired_data import INSTRUCTION_FILE

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 40)}
BACKGROUNDS = ((235, 235, 235), (200, 215, 235), (235, 220, 195), (60, 60, 70))
KINDS = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
EDITS = ("recolor", "move", "remove")


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    x: int  # top-left corner of the bounding square
    y: int
    size: int

    def overlaps(self, other: "Shape", gap: int = 1) -> bool:
        return not (self.x + self.size + gap <= other.x or other.x + other.size + gap <= self.x
                    or self.y + self.size + gap <= other.y or other.y + other.size + gap <= self.y)


@dataclass(frozen=True)
class EditPair:
    original: Image.Image
    instruction: str
    edited: Image.Image


def draw(shapes: list[Shape], background: tuple[int, int, int], size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    canvas = ImageDraw.Draw(image)
    for s in shapes:
        box = (s.x, s.y, s.x + s.size - 1, s.y + s.size - 1)
        fill = COLORS[s.color]
        if s.kind == "circle":
            canvas.ellipse(box, fill=fill)
        elif s.kind == "square":
            canvas.rectangle(box, fill=fill)
        else:
            canvas.polygon([(s.x + (s.size - 1) / 2, s.y), (s.x, s.y + s.size - 1), (s.x + s.size - 1, s.y + s.size - 1)],
                           fill=fill)
    return image


def make_pair(rng: random.Random, size: int = 32, max_shapes: int = 2) -> EditPair:
    """One random scene, one random edit of one of its shapes, both drawn."""
    while True:
        background = rng.choice(BACKGROUNDS)
        shapes = _scene(rng, size, rng.randint(1, max_shapes))
        target = rng.randrange(len(shapes))
        edited = _edit(rng, shapes, target, size)
        if edited is not None:
            instruction, after = edited
            return EditPair(draw(shapes, background, size), instruction, draw(after, background, size))


def make_pairs(count: int, seed: int, size: int = 32, max_shapes: int = 2) -> list[EditPair]:
    rng = random.Random(seed)
    return [make_pair(rng, size, max_shapes) for _ in range(count)]


def write_pair_folder(out: Path, pairs: list[EditPair]) -> Path:
    """The pairs in the triplet-folder layout `ip2p_core.paired_data` reads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for index, pair in enumerate(pairs):
        folder = out / f"{index:06d}"
        folder.mkdir(exist_ok=True)
        pair.original.save(folder / "original.png")
        pair.edited.save(folder / "edited.png")
        (folder / INSTRUCTION_FILE).write_text(pair.instruction + "\n", encoding="utf-8")
    return out


def _scene(rng: random.Random, size: int, count: int) -> list[Shape]:
    kinds = rng.sample(KINDS, count)  # one of each kind, so "the circle" names one shape
    side = max(4, size * 3 // 8)
    while True:  # a first shape in the middle can leave no room for the others: start the scene again
        shapes = [Shape(kind, rng.choice(list(COLORS)), rng.randint(0, size - side), rng.randint(0, size - side), side)
                  for kind in kinds]
        if not any(a.overlaps(b) for i, a in enumerate(shapes) for b in shapes[i + 1:]):
            return shapes


def _edit(rng: random.Random, shapes: list[Shape], target: int, size: int) -> tuple[str, list[Shape]] | None:
    shape = shapes[target]
    others = shapes[:target] + shapes[target + 1:]
    kind = rng.choice(EDITS)
    if kind == "remove":
        return f"remove the {shape.kind}", others
    if kind == "recolor":
        color = rng.choice([c for c in COLORS if c != shape.color])
        return f"make the {shape.kind} {color}", others[:target] + [replace(shape, color=color)] + others[target:]
    direction = rng.choice(list(DIRECTIONS))
    dx, dy = DIRECTIONS[direction]
    step = size // 4
    moved = replace(shape, x=shape.x + dx * step, y=shape.y + dy * step)
    inside = 0 <= moved.x <= size - moved.size and 0 <= moved.y <= size - moved.size
    if not inside or any(moved.overlaps(other) for other in others):
        return None
    return f"move the {shape.kind} {direction}", others[:target] + [moved] + others[target:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ip2p_core.synthetic_shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the pair folders into")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--max-shapes", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_pair_folder(args.out, make_pairs(args.count, args.seed, args.size, args.max_shapes))


if __name__ == "__main__":
    main()
