"""What a folder batch is made of, whichever runs it (one server, or a Ray pool of them): jobs
whose output names follow from what they edit, the results written without ever replacing a
file, a JSONL manifest written as results arrive, and the summary.

A job's key is a hash of the input picture (name and bytes), the mask's bytes, the prompt it is
edited with (the workflow with the instruction, seed, steps, resolution and model names put in)
and nothing else: the same edit always has the same output names, so a rerun with --resume knows
what is finished, and a different edit never takes a finished one's name.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from training.paired_data import IMAGE_SUFFIXES as PAIR_IMAGE_SUFFIXES
from training.paired_data import INSTRUCTION_FILE

MANIFEST_NAME = "manifest.jsonl"
KEY_LENGTH = 10  # hex digits of the job's hash in its output names
PARTIAL = ".partial-"  # a result being written: renamed to its name only when complete


@dataclass
class Job:
    image: Path
    key: str
    instructions: list[str]
    attempts: list[str] = field(default_factory=list)  # why earlier tries were given up (a worker lost)

    @property
    def stem(self) -> str:
        return f"{self.image.stem}_edited_{self.key}"


@dataclass
class Outcome:
    """One job's result as a worker returns it: the saved files (suffix, bytes), or the error."""

    key: str
    worker: str
    seconds: float
    files: list[tuple[str, bytes]] = field(default_factory=list)
    error: str | None = None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_key(image: Path, mask_digest: str | None, prompt: dict) -> str:
    """The hash naming a job's outputs: the picture's name and bytes, the mask's bytes and the
    prompt (with everything but the uploaded file names put in)."""
    payload = json.dumps({"image": image.name, "bytes": digest(image.read_bytes()), "mask": mask_digest,
                          "prompt": prompt}, sort_keys=True)
    return digest(payload.encode())[:KEY_LENGTH]


def output_paths(folder: Path, job: Job, suffixes: list[str]) -> list[Path]:
    """Where a job's saved images go: <stem><suffix>, then <stem>_2<suffix>, ... for a workflow
    that saves several."""
    return [folder / (job.stem + (f"_{n}" if n > 1 else "") + suffix) for n, suffix in enumerate(suffixes, 1)]


def write_once(target: Path, data: bytes) -> None:
    """Writes `data` to `target` complete or not at all (a partial file, then a hard link under the
    name), and refuses a name that is taken: nothing is ever overwritten, even by a crash."""
    partial = target.with_name(f"{PARTIAL}{os.getpid()}-{target.name}")
    try:
        with open(partial, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(partial, target)  # FileExistsError if the name is taken
    finally:
        partial.unlink(missing_ok=True)


def write_pair(folder: Path, job: Job, edited: Path) -> Path:
    """The job's input, instruction and edit as a triplet folder (training/paired_data.py reads it):
    <folder>/<stem>/original.<ext>, edited.<ext>, instruction.txt."""
    pair = folder / job.stem
    pair.mkdir(parents=True)  # FileExistsError: an earlier run wrote this pair
    suffix = job.image.suffix.lower()
    if suffix in PAIR_IMAGE_SUFFIXES:
        shutil.copyfile(job.image, pair / f"original{suffix}")
    else:  # a format the reader does not take (gif, tif): as PNG
        with Image.open(job.image) as picture:
            picture.convert("RGB").save(pair / "original.png")
    shutil.copyfile(edited, pair / f"edited{edited.suffix}")
    (pair / INSTRUCTION_FILE).write_text("\n".join(job.instructions) + "\n", encoding="utf-8")
    return pair


class Manifest:
    """The batch's JSONL record, one line per finished or failed job, appended and synced as each
    arrives, so an interrupted run leaves every finished result listed."""

    def __init__(self, path: Path):
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        """Its lines, in order; a line a crash cut short is left out (its job counts as not done)."""
        if not self.path.is_file():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def finished(self, output_dir: Path) -> set[str]:
        """Keys of jobs an earlier run finished, whose outputs are all still there."""
        return {record["key"] for record in self.records() if record.get("error") is None and record.get("outputs")
                and all((output_dir / name).is_file() for name in record["outputs"])}

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class Tally:
    """Done, failed and skipped jobs, and per worker its images and seconds, for the summary."""

    started: float = field(default_factory=time.monotonic)
    total: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0
    retried: int = 0
    seconds_by_worker: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, job: Job, outcome: Outcome) -> None:
        self.retried += bool(job.attempts)
        if outcome.error is None:
            self.done += 1
            self.seconds_by_worker[outcome.worker].append(outcome.seconds)
        else:
            self.failed.append(job.image.name)

    def summary(self) -> str:
        minutes = (time.monotonic() - self.started) / 60
        lines = [f"{self.done} edited, {len(self.failed)} failed, {self.skipped} skipped (finished before), "
                 f"{self.retried} retried on another worker; {self.done / minutes if minutes else 0:.1f} "
                 "images per minute"]
        lines += [f"  {worker}: {len(seconds)} image(s), {statistics.median(seconds):.2f} s median"
                  for worker, seconds in sorted(self.seconds_by_worker.items())]
        if self.failed:
            lines.append("  failed: " + ", ".join(self.failed))
        return "\n".join(lines)


def manifest_record(job: Job, outcome: Outcome, outputs: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """A manifest line: the job, the run's settings, its outputs or error, the seconds its server
    took, which worker, why earlier tries were given up, and when it was recorded (Unix time)."""
    return {"input": job.image.name, "key": job.key, "instruction": job.instructions, **settings,
            "outputs": [p.name for p in outputs], "seconds": round(outcome.seconds, 3), "worker": outcome.worker,
            "error": outcome.error, "retried_after": job.attempts, "finished": time.time()}
