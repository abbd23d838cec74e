"""A folder batch over a pool of Ray actors, each driving its own ComfyUI server
(`python -m tools.batch_edit ... --ray [ADDRESS]`; docs/batch.md).

Ray (PyPI `ray`, an optional dependency imported by this module only) places the actors: one per
GPU (num_gpus=1) where the cluster has GPUs, else on CPUs (--cpus-per-worker each, which are also
its server's torch threads); with --url, one per running server. The driver hands the next image
to whichever actor is free, so a slow image holds up one worker only. Pictures go out and results
come back through Ray's object store: only the driver's machine reads the input folder and writes
the results and the manifest. This checkout travels to the actors as Ray's working_dir, so each
node needs only the Python environment (ComfyUI, Ray, torch).

A worker whose Ray actor or ComfyUI server dies is replaced, and the image it held goes back to
the queue for the next free worker (up to MAX_ATTEMPTS tries; the manifest lists why each was
given up); an image that fails in a live server fails alone, as without Ray.
"""
from __future__ import annotations

import logging
import signal
import socket
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ray

from .batch_edit import Editor, WorkerLost, short
from .batch_jobs import Job, Outcome
from .comfy_client import ComfyClient, HostError
from .comfy_host import REPO_ROOT, ComfyHost

log = logging.getLogger("ip2p.batch")
MAX_ATTEMPTS = 3  # an image that three workers died on is reported, not handed out again
MAX_REPLACEMENTS = 3  # per worker: a server that cannot stay up is not restarted forever
STOP_SECONDS = 30
WAIT_SECONDS = 0.5  # how often the driver looks up from Ray's wait, e.g. for Ctrl-C


class EditWorker:
    """A Ray actor owning one ComfyUI server: started here with the pack, or one the user runs."""

    def __init__(self, url: str | None, cpus: int, gpu: bool):
        self._work = None
        self.editor: Editor | None = None
        if url:
            self.host, self.name = ComfyClient(url).check(), url
            return
        self._work = tempfile.TemporaryDirectory(prefix="ip2p-batch-worker-")
        env = {} if gpu else {"OMP_NUM_THREADS": str(cpus)}
        self.host = ComfyHost(self._work.name, env=env, cpu=not gpu, die_with_parent=True).start()
        self.name = f"{socket.gethostname()}:{self.host.port}"

    def object_info(self) -> dict:
        return self.host.object_info()

    def start(self, *editor_args) -> str:
        self.editor = Editor(self.host, self.name, *editor_args)
        return self.name

    def edit(self, key: str, image_name: str, data: bytes) -> Outcome:
        return self.editor.edit(key, image_name, data)

    def stop(self) -> None:
        if isinstance(self.host, ComfyHost):
            self.host.stop()
            self._work.cleanup()


RemoteWorker = ray.remote(EditWorker)


@dataclass
class Slot:
    """A place in the pool: its server's URL (None: the actor starts one), its actor, the worker's
    name, and how often it was replaced."""

    url: str | None
    actor: object = None
    name: str = ""
    replacements: int = 0


class RayPool:
    """The batch's workers as Ray actors; `edits` hands out the jobs as they free up."""

    def __init__(self, address: str, urls: list[str], workers: int | None, cpus_per_worker: int):
        self.address, self.urls, self.workers, self.cpus = address, urls, workers, cpus_per_worker
        self.local = not urls
        self.slots: list[Slot] = []
        self.gpu = False
        self.editor_args: tuple = ()

    @contextmanager
    def running(self) -> Iterator["RayPool"]:
        started = not ray.is_initialized()  # a Ray this process started already is used as it is
        if started:
            start_ray(self.address)
        try:
            self.gpu = self.local and ray.cluster_resources().get("GPU", 0) >= 1
            count = len(self.urls) or self.workers or (int(ray.cluster_resources()["GPU"]) if self.gpu else 1)
            if self.urls and self.workers not in (None, count):
                raise SystemExit(f"--workers {self.workers} with {count} --url: each URL is one worker")
            self.slots = [Slot(url, name=url or f"worker {i + 1}") for i, url in
                          enumerate(self.urls or [None] * count)]
            for slot in self.slots:
                slot.actor = self._actor(slot)
            log.info("Ray: %d worker(s), each %s", count, "attached to its --url" if self.urls else
                     "with a ComfyUI server on one GPU" if self.gpu else f"with a ComfyUI server on {self.cpus} CPU(s)")
            yield self
        finally:
            for slot in self.slots:
                self._stop(slot)
            if started:
                ray.shutdown()

    def _actor(self, slot: Slot):
        resources = {"num_gpus": 1, "num_cpus": 1} if self.gpu else {"num_cpus": 0 if slot.url else self.cpus}
        return RemoteWorker.options(**resources).remote(slot.url, self.cpus, self.gpu)

    def object_info(self) -> dict:
        try:
            return ray.get(self.slots[0].actor.object_info.remote())
        except ray.exceptions.RayError as exc:
            raise SystemExit(f"the first Ray worker's ComfyUI did not start: {reason(exc)}") from None

    def start(self, *editor_args) -> None:
        """What every worker edits with (batch_edit.Editor's arguments); workers start on it in `edits`."""
        self.editor_args = editor_args

    def edits(self, jobs: list[Job]) -> Iterator[tuple[Job, Outcome]]:
        """(job, outcome) as each job finishes, on whichever worker was free first."""
        queue = deque(jobs)
        waiting: dict = {}  # Ray reference -> (slot, the job it edits, or None while the worker starts)
        for slot in self.slots:
            waiting[slot.actor.start.remote(*self.editor_args)] = (slot, None)
        with ctrl_c_noted() as interrupted:
            while waiting:
                ready, _ = ray.wait(list(waiting), num_returns=1, timeout=WAIT_SECONDS)
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if ready:
                    yield from self._handle(ready[0], waiting, queue)

    def _handle(self, ref, waiting: dict, queue: deque) -> Iterator[tuple[Job, Outcome]]:
        """One finished call: a worker started, a job edited, or a worker lost (its job requeued)."""
        slot, job = waiting.pop(ref)
        try:
            answer = ray.get(ref)
        except (WorkerLost, ray.exceptions.RayError, HostError) as exc:
            why = reason(exc)
            log.warning("worker %s lost (%s): %s", slot.name, why,
                        f"{job.image.name} goes back to the queue" if job else "replacing it")
            if job is not None:
                job.attempts.append(f"{slot.name}: {why}")
                if len(job.attempts) < MAX_ATTEMPTS:
                    queue.appendleft(job)
                else:
                    yield job, Outcome(job.key, slot.name, 0.0, error=f"{MAX_ATTEMPTS} workers were lost on it")
            if self._replace(slot):
                waiting[slot.actor.start.remote(*self.editor_args)] = (slot, None)
        else:
            if job is None:
                if slot.replacements:
                    log.info("worker %s replaces %s", answer, slot.name)
                slot.name = answer
            else:
                yield job, answer
            if queue:
                job = queue.popleft()
                waiting[slot.actor.edit.remote(job.key, job.image.name, job.image.read_bytes())] = (slot, job)
        if queue and not waiting:  # every worker retired
            for job in queue:
                yield job, Outcome(job.key, "-", 0.0, error="no worker left: every ComfyUI server failed")
            queue.clear()

    def _replace(self, slot: Slot) -> bool:
        """A new actor (and server) in the slot; False once it was replaced too often."""
        self._stop(slot)
        if slot.replacements >= MAX_REPLACEMENTS:
            log.error("worker %s retired: replaced %d times already", slot.name, slot.replacements)
            return False
        slot.replacements += 1
        slot.actor = self._actor(slot)
        return True

    @staticmethod
    def _stop(slot: Slot) -> None:
        """Stops the slot's server (the actor's own stop) and ends the actor."""
        if slot.actor is None:
            return
        try:
            ray.get(slot.actor.stop.remote(), timeout=STOP_SECONDS)
        except ray.exceptions.RayError:
            pass  # a dead actor: its server died with it (ComfyHost's die_with_parent)
        ray.kill(slot.actor)
        slot.actor = None


def start_ray(address: str) -> None:
    """Ray on this machine ("local") or the cluster at `address`, with this checkout as the
    working_dir every worker imports the tool from and links into its server as the pack."""
    ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, runtime_env={"working_dir": str(REPO_ROOT), "excludes": [".git"]})


@contextmanager
def ctrl_c_noted() -> Iterator[threading.Event]:
    """Ctrl-C sets the event instead of raising where it lands: a KeyboardInterrupt inside Ray's
    blocking wait can be lost there, so the driver raises it itself between waits."""
    pressed = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def reason(exc: Exception) -> str:
    """One line: what made a worker fail."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(exc, ray.exceptions.RayActorError) and not isinstance(cause, WorkerLost):
        return "its Ray actor died"
    return short(cause)
