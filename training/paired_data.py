"""Reads (original image, instruction, edited image) triplets, the data an IP2P model learns from.

Edit datasets come in three shapes: a folder with one subfolder per pair, an index file
(JSONL or CSV) naming the two images and the instruction, and the column layout of the
published datasets (`original_image` / `edit_prompt` / `edited_image`, as in
timbrooks/instructpix2pix-clip-filtered) stored as Parquet with the images embedded.
Everything is checked when read, so a bad row names its file and line instead of
failing hours into a run with a PIL traceback.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ip2p_core.errors import IP2PUserError

COLUMNS = ("original_image", "edit_prompt", "edited_image")
PAIR_FILES = ("original", "edited")  # <pair>/original.<ext>, <pair>/edited.<ext>, <pair>/instruction.txt
INSTRUCTION_FILE = "instruction.txt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

ImageSource = Union[Path, bytes]


@dataclass(frozen=True)
class Pair:
    original: ImageSource
    instruction: str
    edited: ImageSource
    where: str  # names the pair in messages: a folder, or a file and line


@dataclass(frozen=True)
class Columns:
    """Which columns of an index or dataset hold the two images and the instruction."""

    original: str = COLUMNS[0]
    instruction: str = COLUMNS[1]
    edited: str = COLUMNS[2]


def read_pairs(source: Path, columns: Columns = Columns()) -> list[Pair]:
    """All pairs of a triplet folder, a .jsonl/.csv index or a .parquet dataset file."""
    source = Path(source)
    if source.is_dir():
        pairs = _folder_pairs(source)
    elif not source.is_file():
        raise IP2PUserError(f"training data not found: {source}")
    elif source.suffix == ".jsonl":
        pairs = _index_pairs(source, _jsonl_rows(source), columns)
    elif source.suffix == ".csv":
        with source.open(newline="", encoding="utf-8") as handle:
            pairs = _index_pairs(source, list(csv.DictReader(handle)), columns)
    elif source.suffix == ".parquet":
        pairs = _parquet_pairs(source, columns)
    else:
        raise IP2PUserError(f"{source.name}: training data must be a folder of pairs, a .jsonl or .csv index "
                            "or a .parquet dataset file")
    if not pairs:
        raise IP2PUserError(f"{source} holds no training pairs")
    return pairs


def load_image(image: ImageSource, where: str) -> Image.Image:
    """The RGB image, or an error naming the pair when it cannot be decoded."""
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as opened:
            return opened.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        name = "embedded image" if isinstance(image, bytes) else str(image)
        raise IP2PUserError(f"cannot read {name} ({where}): {exc}. Replace or remove that pair") from exc


def load_pair(pair: Pair) -> tuple[Image.Image, Image.Image]:
    """Both images of a pair, which must have the same size: the edit is learnt pixel for pixel."""
    original, edited = load_image(pair.original, pair.where), load_image(pair.edited, pair.where)
    if original.size != edited.size:
        raise IP2PUserError(f"{pair.where}: the original image is {original.size[0]}x{original.size[1]} but the "
                            f"edited one is {edited.size[0]}x{edited.size[1]}; the two images of a pair must "
                            "have the same size")
    return original, edited


@dataclass(frozen=True)
class PairTransform:
    """The same resize, crop and flip for both images of a pair, then values in [-1, 1]."""

    resolution: int
    center_crop: bool = False
    random_flip: bool = False

    def __call__(self, original: Image.Image, edited: Image.Image, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        both = torch.cat([image_to_tensor(self._resized(original)), image_to_tensor(self._resized(edited))])
        _, height, width = both.shape
        size = self.resolution
        if self.center_crop:
            top, left = (height - size) // 2, (width - size) // 2
        else:
            top = int(torch.randint(height - size + 1, (1,), generator=generator))
            left = int(torch.randint(width - size + 1, (1,), generator=generator))
        both = both[:, top:top + size, left:left + size]
        if self.random_flip and bool(torch.rand((), generator=generator) < 0.5):
            both = both.flip(-1)
        return both[:3], both[3:]

    def _resized(self, image: Image.Image) -> Image.Image:
        scale = self.resolution / min(image.size)
        size = (max(self.resolution, round(image.size[0] * scale)), max(self.resolution, round(image.size[1] * scale)))
        return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def image_to_tensor(image: Image.Image) -> Tensor:
    """An RGB image as a (3, H, W) float tensor in [-1, 1], the range the VAE encodes."""
    pixels = torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8)
    return pixels.view(image.size[1], image.size[0], 3).permute(2, 0, 1).float() / 127.5 - 1.0


def _folder_pairs(folder: Path) -> list[Pair]:
    pairs = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = {f.stem: f for f in sub.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES}
        missing = [f"{name}.png" for name in PAIR_FILES if name not in files]
        if not (sub / INSTRUCTION_FILE).is_file():
            missing.append(INSTRUCTION_FILE)
        if missing:
            raise IP2PUserError(f"pair folder {sub} lacks {', '.join(missing)}: each pair folder holds "
                                f"original.png, edited.png and {INSTRUCTION_FILE}")
        pairs.append(Pair(files["original"], (sub / INSTRUCTION_FILE).read_text(encoding="utf-8").strip(),
                          files["edited"], where=str(sub)))
    return pairs


def _jsonl_rows(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise IP2PUserError(f"{path.name} line {number} is not JSON: {exc}") from exc
    return rows


def _index_pairs(index: Path, rows: list[dict], columns: Columns) -> list[Pair]:
    pairs = []
    for number, row in enumerate(rows, start=1):
        where = f"{index.name} row {number}"
        original, instruction, edited = _columns(row, columns, where)
        pairs.append(Pair(index.parent / original, str(instruction), index.parent / edited, where))
    return pairs


def _columns(row: dict, columns: Columns, where: str) -> tuple:
    wanted = (columns.original, columns.instruction, columns.edited)
    missing = [name for name in wanted if row.get(name) in (None, "")]
    if missing:
        raise IP2PUserError(f"{where} has no {', '.join(missing)} (columns present: {', '.join(row) or 'none'}); "
                            "name the columns with --original-column, --instruction-column and --edited-column")
    return tuple(row[name] for name in wanted)


def _parquet_pairs(path: Path, columns: Columns) -> list[Pair]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise IP2PUserError(f"{path.name}: reading .parquet datasets needs pyarrow (pip install pyarrow)") from exc
    rows = pq.read_table(path).to_pylist()
    pairs = []
    for number, row in enumerate(rows, start=1):
        where = f"{path.name} row {number}"
        original, instruction, edited = _columns(row, columns, where)
        pairs.append(Pair(_embedded(original, path, where), str(instruction), _embedded(edited, path, where), where))
    return pairs


def _embedded(value, path: Path, where: str) -> ImageSource:
    """An image cell as the `datasets` library stores it: {'bytes': ..., 'path': ...}, raw bytes or a path."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value:
        return path.parent / value
    raise IP2PUserError(f"{where}: an image cell holds neither image bytes nor a path")
