"""Folder-scale edits: images per minute with one and two Ray workers, and what the batch tool
itself costs per image against driving one ComfyUI server directly, in the same run.

    python -m benchmarks.batch_scaling                      # 24 scenes, 3 rounds
    python -m benchmarks.batch_scaling --images 6 --rounds 1   # a quick look

The shipped demo model's workflow (workflows/basic_edit.api.json, its 20 steps) on test-split
scenes. Each round runs, one after the other: the images through one server driven directly
(upload, run, download: tools.comfy_client, no files written), then `python -m tools.batch_edit`
with its own server, with --ray and 1 worker, with --ray and 2 workers. Every server gets one
torch thread (OMP_NUM_THREADS=1). Rates are over the steady part of a run, from the first image
finished to the last (the start-up of Ray and the servers is reported apart, as the whole run's
wall time); the tool's overhead per image is its steady seconds per image minus the direct loop's
in the same round.
"""
from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from ip2p_core import demo_model
from tools import batch_edit
from tools.batch_edit import UPLOAD_FOLDER, saved_images
from tools.batch_jobs import MANIFEST_NAME, Manifest
from tools.comfy_host import REPO_ROOT, ComfyHost
from tools.workflow_inputs import load_workflow, with_inputs
from training.synthetic_shapes import evaluation_pairs

from . import report_cli

log = logging.getLogger("batch_scaling")
WORKFLOW = REPO_ROOT / "workflows" / "basic_edit.api.json"
INSTRUCTION = "make the square red"
PATHS = {"one server, driven directly": None, "batch_edit, its own server": [],
         "batch_edit --ray, 1 worker": ["--ray", "--workers", "1"],
         "batch_edit --ray, 2 workers": ["--ray", "--workers", "2"]}
ONE_SERVER = ("batch_edit, its own server", "batch_edit --ray, 1 worker")  # the rows whose overhead is the tool's


def scenes(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for index, pair in enumerate(evaluation_pairs("test", count, 64)):
        paths.append(folder / f"scene{index:03d}.png")
        pair.original.save(paths[-1])
    return paths


def direct(images: list[Path], work: Path) -> dict:
    """The images through one server, an image at a time, with nothing around it."""
    started = time.monotonic()
    with ComfyHost(work) as host:
        prompt = with_inputs(load_workflow(WORKFLOW), instruction=INSTRUCTION, seed=0,
                             checkpoint=demo_model.CHECKPOINT_NAME)
        finished = []
        for image in images:
            outputs = host.run(with_inputs(prompt, image=host.upload(image, UPLOAD_FOLDER)))
            [host.download(item) for item in saved_images(outputs)]
            finished.append(time.monotonic())
    return {"finished": finished, "wall": time.monotonic() - started}


def tool(images: Path, out: Path, extra: list[str]) -> dict:
    """The images through `python -m tools.batch_edit` (in this process), with `extra` options."""
    started = time.monotonic()
    code = batch_edit.main([str(a) for a in ("--workflow", WORKFLOW, "--input-dir", images, "--output-dir", out,
                                             "--instruction", INSTRUCTION, "--seed", 0, *extra)])
    wall = time.monotonic() - started
    records = Manifest(out / MANIFEST_NAME).records()
    if code or any(r["error"] for r in records):
        raise RuntimeError(f"batch_edit {' '.join(extra)} failed: {[r['error'] for r in records]}")
    offset = time.monotonic() - time.time()  # the manifest's Unix times on this clock
    return {"finished": sorted(r["finished"] + offset for r in records), "wall": wall,
            "workers": sorted({r["worker"] for r in records})}


def steady_seconds(finished: list[float]) -> float:
    """Seconds per image from the first image finished to the last."""
    return (finished[-1] - finished[0]) / (len(finished) - 1)


def run(args) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"  # each server (a child process) gets one torch thread
    rounds = {path: [] for path in PATHS}
    with tempfile.TemporaryDirectory(prefix="batch-scaling-") as work:
        work = Path(work)
        images = scenes(work / "scenes", args.images)
        for index in range(args.rounds):
            for path, extra in PATHS.items():
                result = (direct(images, work / f"direct{index}") if extra is None
                          else tool(work / "scenes", work / f"{path}-{index}".replace(" ", "_"), extra))
                result["steady"] = steady_seconds(result["finished"])
                rounds[path].append(result)
                log.info("round %d, %s: %.2f s per image, %.1f s in all", index + 1, path, result["steady"],
                         result["wall"])
    rows = {}
    for path, results in rounds.items():
        steady = statistics.median(r["steady"] for r in results)
        overhead = statistics.median(r["steady"] - d["steady"]
                                     for r, d in zip(results, rounds["one server, driven directly"]))
        rows[path] = {"seconds_per_image": steady, "images_per_minute": 60 / steady,
                      "wall_seconds": statistics.median(r["wall"] for r in results), "overhead": overhead}
    return {"images": args.images, "rounds": args.rounds, "cores": os.cpu_count(), "rows": rows}


def markdown(report: dict, command: str) -> str:
    direct_rate = report["rows"]["one server, driven directly"]["images_per_minute"]
    lines = [f"Command: `{command}`; {report['images']} test-split scenes, {report['rounds']} round(s), medians; "
             f"{report['cores']} cores, every server one torch thread; {report['machine']}; "
             f"{report['total_seconds'] / 60:.0f} min in all.", "",
             "| path | images per minute (steady) | vs. one server directly | tool's overhead per image | "
             "whole run, with start-up |", "|---|---|---|---|---|"]
    for path, row in report["rows"].items():
        overhead = f"{1000 * row['overhead']:+.0f} ms" if path in ONE_SERVER else "-"
        lines.append(f"| {path} | {row['images_per_minute']:.1f} | {row['images_per_minute'] / direct_rate:.2f}x | "
                     f"{overhead} | {row['wall_seconds']:.0f} s |")
    return "\n".join(lines) + "\n"


def options(parser) -> None:
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)


if __name__ == "__main__":
    report_cli.main("batch_scaling", __doc__, options, run, markdown)
