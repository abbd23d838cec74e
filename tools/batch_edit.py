"""Runs a workflow on every image in a folder, headless, through real ComfyUI servers.

    python -m tools.batch_edit --workflow workflows/basic_edit.api.json --input-dir photos \\
        --instruction "make it winter" --output-dir edited [--checkpoint PATH] [--url URL] \\
        [--resume] [--ray [ADDRESS] [--workers N]] [--pairs-out DIR]

Without --url it starts ComfyUI in a temporary folder with this pack (as tools/edit_image.py
does; set IP2P_COMFYUI_DIR for an upstream checkout) and links the model files in; with --url
it uses a ComfyUI that is already running (the pack installed there), and --checkpoint names a
file as that server lists it. With --ray the images are shared out over a pool of Ray actors,
each driving its own ComfyUI server (or one of several --url servers), as they free up
(tools/batch_ray.py; docs/batch.md has the cluster recipe).

Each image is uploaded, put into the workflow's Load Image with the instruction (and --seed,
--steps, --resolution, --mask when given), queued, and the images the workflow saves are written
to --output-dir as <name>_edited_<key>.png, where the key is a hash of the input, the prompt and
the mask (tools/batch_jobs.py): the same edit always gets the same name and nothing is ever
overwritten. Every result is also a line of <output-dir>/manifest.jsonl, written as it arrives;
--resume skips the images it lists as finished. A failing image is reported and the batch goes
on; the exit code is 1 if any image failed. The workflow may be in API or UI format.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .batch_jobs import (
    MANIFEST_NAME,
    Job,
    Manifest,
    Outcome,
    Tally,
    digest,
    job_key,
    manifest_record,
    output_paths,
    write_once,
    write_pair,
)
from .comfy_client import ComfyClient, HostError
from .comfy_host import ComfyHost
from .run_common import INSTRUCTION_HELP, demo_checkpoint, find_checkpoint, with_instructions
from .ui_workflow import WorkflowFormatError, load_any
from .workflow_inputs import MODEL_FILES, Prompt, instructions_of, seeds_of, with_inputs

log = logging.getLogger("ip2p.batch")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
UPLOAD_FOLDER = "ip2p_batch"  # inputs go into this sub-folder of the server's input/
# Where a local host takes each kind of model file (see workflow_inputs.MODEL_FILES): the
# legacy folder names, which the 2024 host knows and upstream lists under diffusion_models and
# text_encoders.
MODEL_FOLDERS = {"checkpoint": "checkpoints", "sd_checkpoint": "checkpoints", "diffusers": "diffusers",
                 "unet": "unet", "clip": "clip", "vae": "vae", "upscale_model": "upscale_models", "lora": "loras",
                 "controlnet": "controlnet"}


class WorkerLost(RuntimeError):
    """A worker's ComfyUI server stopped answering: the image it was editing is not at fault."""


def saved_images(outputs: dict) -> list[dict]:
    """The images a run saved (Save Image: type "output"; previews are left out)."""
    return [item for node in outputs.values() if isinstance(node, dict)
            for item in node.get("images") or [] if item.get("type", "output") == "output"]


def short(exc: Exception) -> str:
    """One line for the per-image report (the host's traceback stays out of it)."""
    if isinstance(exc, HostError) and exc.kind == "execution":
        return f"{exc.node_type} failed: {exc.exception_type}: {exc.exception_message}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def server_gone(host: ComfyClient, exc: Exception) -> bool:
    """Whether `exc` says the server is gone (refused or dropped connections, a process that
    exited) rather than that this image failed in it."""
    unreachable = (urllib.error.URLError, ConnectionError)
    if isinstance(exc, unreachable):
        return True
    return isinstance(exc, HostError) and exc.kind == "http" and (
        not host.running or isinstance(exc.__cause__, unreachable))



class Editor:
    """One ComfyUI server editing the batch's images: the workflow with the run's settings, the
    model files linked in (a server this side started) or named (one the user runs)."""

    def __init__(self, host: ComfyClient, name: str, prompt: Prompt, settings: dict[str, Any],
                 files: dict[str, str], names: dict[str, str], mask: tuple[str, bytes] | None):
        self.host, self.name = host, name
        if isinstance(host, ComfyHost):
            names = {**names, **{kind: host.add_model(MODEL_FOLDERS[kind], path) for kind, path in files.items()}}
        mask_name = host.upload_bytes(*mask, UPLOAD_FOLDER) if mask else None
        self.prompt = with_inputs(prompt, mask=mask_name, **settings, **names)

    def edit(self, key: str, image_name: str, data: bytes) -> Outcome:
        """The image edited: the saved files, or the error that is the image's own; WorkerLost when
        the server is gone."""
        started = time.monotonic()
        try:
            run = with_inputs(self.prompt, image=self.host.upload_bytes(image_name, data, UPLOAD_FOLDER))
            items = saved_images(self.host.run(run))
            if not items:
                raise RuntimeError("the workflow saved no image: it needs a Save Image node")
            files = [(Path(item["filename"]).suffix or ".png", self.host.download(item)) for item in items]
        except Exception as exc:  # noqa: BLE001 - one bad image must not stop the batch
            if server_gone(self.host, exc):
                raise WorkerLost(f"its ComfyUI server stopped answering ({short(exc)})") from exc
            return Outcome(key, self.name, time.monotonic() - started, error=short(exc))
        return Outcome(key, self.name, time.monotonic() - started, files)


class OneServer:
    """The batch on one server, an image at a time: the one this side starts, or --url's."""

    local: bool

    def __init__(self, url: str | None):
        self.url = url
        self.local = url is None
        self.editor: Editor | None = None

    @contextmanager
    def running(self) -> Iterator["OneServer"]:
        if self.url:
            try:
                self.host = ComfyClient(self.url).check()
            except HostError as exc:
                raise SystemExit(f"--url: {exc}") from None
            yield self
            return
        with tempfile.TemporaryDirectory(prefix="ip2p-batch-") as work, ComfyHost(work) as host:
            log.info("ComfyUI (%s) started in %.1f s", host.kind, host.startup_seconds)
            self.host = host
            yield self

    def object_info(self) -> dict:
        return self.host.object_info()

    def start(self, *editor_args) -> None:
        self.editor = Editor(self.host, self.host.url, *editor_args)

    def edits(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        for job in jobs:
            try:
                yield job, self.editor.edit(job.key, job.image.name, job.image.read_bytes())
            except WorkerLost as exc:
                yield job, Outcome(job.key, self.editor.name, 0.0, error=str(exc))
                log.error("the ComfyUI server is gone: stopping; rerun with --resume to edit the other %d image(s)",
                          len(jobs) - jobs.index(job) - 1)
                return


def list_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        log.info("skipping %d file(s) that are not images by name: %s", len(skipped), ", ".join(skipped))
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def model_files(args, prompt: Prompt, local: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The workflow's model files by kind: (files each local server links in, names as the server
    lists them). A server the user runs takes names; a local one takes files, else the demo model."""
    given = dict(args.model)
    if args.checkpoint is not None:
        given["checkpoint"] = args.checkpoint
    if not local:
        return {}, {kind: str(value) for kind, value in given.items()}
    uses_checkpoint = any(node["class_type"] == MODEL_FILES["checkpoint"][0] for node in prompt.values())
    if "checkpoint" not in given and uses_checkpoint and (found := find_checkpoint(None)):
        given["checkpoint"] = found
    files = {}
    for kind, path in given.items():
        path = Path(path)
        if not path.exists():
            raise SystemExit(f"{kind} file {path}: no such file or folder")
        files[kind] = str(path.resolve())
    names = {"checkpoint": demo_checkpoint()} if uses_checkpoint and "checkpoint" not in files else {}
    return files, names


def model_option(text: str) -> tuple[str, str]:
    kind, sep, value = text.partition("=")
    if not sep or kind not in MODEL_FILES:
        raise argparse.ArgumentTypeError(f"expected KIND=FILE with KIND one of {', '.join(MODEL_FILES)}")
    return kind, value


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", type=Path, required=True, help="an API- or UI-format workflow file")
    parser.add_argument("--input-dir", type=Path, required=True, help="folder of images to edit")
    parser.add_argument("--output-dir", type=Path, required=True, help="folder for the results (created)")
    parser.add_argument("--instruction", action="append", help=INSTRUCTION_HELP)
    parser.add_argument("--checkpoint", help="an IP2P checkpoint: a file, or with --url the name the server lists")
    parser.add_argument("--model", type=model_option, action="append", default=[], metavar="KIND=FILE",
                        help=f"another model file the workflow loads; KIND: {', '.join(MODEL_FILES)}")
    parser.add_argument("--url", action="append",
                        help="use the ComfyUI running at this URL instead of starting one; with --ray, give one "
                             "per server and each gets a worker")
    parser.add_argument("--seed", type=int, help="seed for every image (default: the workflow's)")
    parser.add_argument("--steps", type=int, help="default: the workflow's")
    parser.add_argument("--resolution", type=int, help="working resolution, longest side in px (0: each input's)")
    parser.add_argument("--mask", type=Path, help="one mask for every image, for workflows with Load Image (as Mask)")
    parser.add_argument("--resume", action="store_true",
                        help="skip the images the manifest lists as finished with the same settings")
    parser.add_argument("--manifest", type=Path, help=f"the JSONL record (default: <output-dir>/{MANIFEST_NAME})")
    parser.add_argument("--pairs-out", type=Path,
                        help="also write each result as a training triplet folder (original, edited, instruction) "
                             "here, the layout python -m training.train reads")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="share the images over Ray actors, each with its own ComfyUI server: a local Ray "
                             "without ADDRESS, else the running cluster at ADDRESS (e.g. 10.0.0.1:6379 or auto)")
    parser.add_argument("--workers", type=int,
                        help="with --ray: how many (default: one per GPU in the cluster, else 1; with --url, one "
                             "per URL)")
    parser.add_argument("--cpus-per-worker", type=int, default=1,
                        help="with --ray, servers on CPUs: the cores each worker reserves, and its server's torch "
                             "threads")
    return parser


def checked(args) -> list[Path]:
    """The images to edit; usage errors stop here, before any server starts."""
    if not args.workflow.is_file():
        raise SystemExit(f"--workflow {args.workflow}: no such file")
    if not args.input_dir.is_dir():
        raise SystemExit(f"--input-dir {args.input_dir}: no such folder")
    images = list_images(args.input_dir)
    if not images:
        raise SystemExit(f"--input-dir {args.input_dir}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if args.url and len(args.url) > 1 and args.ray is None:
        raise SystemExit("--url given more than once: several servers take --ray")
    if args.workers is not None and (args.ray is None or args.workers < 1):
        raise SystemExit("--workers takes --ray and a count of 1 or more")
    if args.mask is not None and not args.mask.is_file():
        raise SystemExit(f"--mask {args.mask}: no such file")
    return images


def pool_for(args):
    if args.ray is None:
        return OneServer(args.url[0] if args.url else None)
    from .batch_ray import RayPool  # Ray is an optional dependency: only --ray needs it
    return RayPool(args.ray, args.url or [], args.workers, args.cpus_per_worker)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images = checked(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(args.manifest or args.output_dir / MANIFEST_NAME)
    tally = Tally()
    pool = pool_for(args)
    with pool.running():
        try:
            prompt = load_any(args.workflow, pool.object_info())
        except WorkflowFormatError as exc:
            raise SystemExit(f"--workflow {args.workflow}: {exc}") from None
        prompt = with_instructions(prompt, args.instruction, args.workflow)
        needs_mask = any(node["class_type"] == "LoadImageMask" for node in prompt.values())
        if needs_mask and args.mask is None:
            raise SystemExit(f"{args.workflow.name} edits inside a mask: pass --mask PATH (an existing image file)")
        mask = (args.mask.name, args.mask.read_bytes()) if needs_mask else None  # uploaded and keyed only if used
        settings = {"seed": args.seed, "steps": args.steps, "resolution": args.resolution}
        files, names = model_files(args, prompt, pool.local)
        keyed = with_inputs(prompt, **settings, **names, **{kind: Path(path).name for kind, path in files.items()})
        instructions = instructions_of(keyed)
        jobs = [Job(image, job_key(image, digest(mask[1]) if mask else None, keyed), instructions)
                for image in images]
        todo = jobs_to_do(jobs, manifest, args)
        tally.total, tally.skipped = len(jobs), len(jobs) - len(todo)
        record = {"workflow": args.workflow.name, "seed": seeds_of(keyed), "steps": args.steps,
                  "resolution": args.resolution}
        log.info("editing %d image(s) from %s with %s%s", len(todo), args.input_dir, args.workflow.name,
                 f" ({tally.skipped} finished before)" if tally.skipped else "")
        pool.start(prompt, settings, files, names, mask)
        try:
            bar = tqdm(total=len(jobs), initial=tally.skipped, unit="image", disable=None)  # a terminal only
            with logging_redirect_tqdm(), bar:
                for job, outcome in pool.edits(todo):
                    finish(job, outcome, args, manifest, record, tally)
                    bar.update()
        except KeyboardInterrupt:
            log.error("interrupted: the finished results and %s are kept; rerun with --resume for the rest",
                      manifest.path)
            log.info("%s", tally.summary())
            return 130
    log.info("%s", tally.summary())
    return 1 if tally.failed else 0


def jobs_to_do(jobs: list[Job], manifest: Manifest, args) -> list[Job]:
    """The jobs not finished before; without --resume, finished ones stop the run instead."""
    finished = manifest.finished(args.output_dir)
    done = [job for job in jobs if job.key in finished]
    if done and not args.resume:
        raise SystemExit(f"{len(done)} of the {len(jobs)} image(s) were edited before with these settings (listed in "
                         f"{manifest.path}): pass --resume to skip them, or choose another --output-dir")
    return [job for job in jobs if job.key not in finished]


def finish(job: Job, outcome: Outcome, args, manifest: Manifest, record: dict, tally: Tally) -> None:
    """A job's result written (files, pair folder, manifest line) and reported."""
    outputs = []
    if outcome.error is None:
        targets = output_paths(args.output_dir, job, [suffix for suffix, _ in outcome.files])
        try:
            for target, (_, data) in zip(targets, outcome.files):
                write_once(target, data)
                outputs.append(target)
        except FileExistsError as exc:
            outcome.error = f"{Path(exc.filename2 or exc.filename).name} exists already: not overwritten"
        if args.pairs_out and outputs:
            try:
                write_pair(args.pairs_out, job, outputs[0])
            except FileExistsError:
                log.warning("%s: its pair folder exists in %s already: kept as it is", job.image.name, args.pairs_out)
    manifest.append(manifest_record(job, outcome, outputs, record))
    tally.add(job, outcome)
    count = f"[{tally.done + len(tally.failed) + tally.skipped}/{tally.total}]"
    retried = f", retried after: {'; '.join(job.attempts)}" if job.attempts else ""
    if outcome.error is None:
        log.info("%s %s -> %s (%.1f s, %s%s)", count, job.image.name, ", ".join(p.name for p in outputs),
                 outcome.seconds, outcome.worker, retried)
    else:
        log.error("%s %s: FAILED: %s%s", count, job.image.name, outcome.error, retried)


if __name__ == "__main__":
    sys.exit(main())
