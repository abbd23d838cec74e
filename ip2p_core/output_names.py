"""Names for results (saved models, edited images) that never overwrite an earlier result."""
from itertools import chain, count
from pathlib import Path


def free_path(folder: Path, stem: str, suffix: str, *, always_numbered: bool = False) -> Path:
    """`stem.suffix` in `folder`, else `stem_1.suffix`, `stem_2.suffix`, ...; with `always_numbered`,
    as ComfyUI's save nodes name theirs, `stem_00001.suffix`, `stem_00002.suffix`, ...

    The first name no file has yet: a user's earlier result is never replaced.
    """
    names = ((f"{stem}_{n:05d}{suffix}" for n in count(1)) if always_numbered
             else chain([stem + suffix], (f"{stem}_{n}{suffix}" for n in count(1))))
    return next(folder / name for name in names if not (folder / name).exists())
