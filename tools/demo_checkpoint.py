"""Writes the shipped demo model as an ordinary single-file checkpoint, for ComfyUI's own Load
Checkpoint, diffusers and the tests and benchmarks (`python -m tools.demo_checkpoint [CACHE]`).

One sub-folder of the cache per model version, named after the expanded weights' sha256, so a
new model is written once and the old one's folder can go. Only folders this tool made go: it
writes a marker into each version folder before anything else, and removes an older version's
folder only where that marker stands. A user who points it at a folder of their own models loses
nothing (a copy of the demo file there is theirs).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from safetensors.torch import save_file

from ip2p_core.demo_model import CHECKPOINT_NAME, MODELS_DIR, load_state_dict, read_record
from ip2p_core.errors import IP2PUserError

from .comfy_host import REPO_ROOT

CACHE = REPO_ROOT / ".cache" / "demo_model"  # where the repository's setup, tests and benchmarks keep it
VERSION_MARKER = ".ip2p-demo-checkpoint-version"  # in every version folder this tool made, and only there


def write_checkpoint(path: Path, folder: Path = MODELS_DIR) -> Path:
    """The demo model as an ordinary single-file checkpoint at `path` (ComfyUI's Load Checkpoint reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file({k: v.contiguous() for k, v in load_state_dict(folder).items()}, str(partial),
              metadata={"format": "pt", "modelspec.architecture": "instruct-pix2pix"})
    partial.replace(path)
    return path


def checkpoint_file(cache: Path, folder: Path = MODELS_DIR) -> Path:
    """The demo model as an ordinary single file under `cache`, written once per recorded version;
    the version folders this tool made for other versions are removed."""
    cache = Path(cache)
    version = cache / read_record(folder)["expanded_sha256"][:16]
    if not (version / CHECKPOINT_NAME).is_file():
        for old in _version_folders(cache):
            if old != version:
                shutil.rmtree(old)
        version.mkdir(parents=True, exist_ok=True)
        (version / VERSION_MARKER).write_text("written by python -m tools.demo_checkpoint; the whole folder is "
                                              "removed when another demo model version is written\n")
        write_checkpoint(version / CHECKPOINT_NAME, folder)
    return version / CHECKPOINT_NAME


def _version_folders(cache: Path) -> list[Path]:
    """The folders under `cache` that this tool made (they carry its marker)."""
    return [marker.parent for marker in cache.glob("*/" + VERSION_MARKER)
            if marker.is_file() and not marker.parent.is_symlink()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.demo_checkpoint",
                                     description="Writes the pack's demo model as an ordinary single-file checkpoint.")
    parser.add_argument("cache", type=Path, nargs="?", default=CACHE,
                        help="folder to write it under, one sub-folder per model version (default: the "
                             "repository's .cache/demo_model)")
    args = parser.parse_args(argv)
    try:
        print(checkpoint_file(args.cache))
    except IP2PUserError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
