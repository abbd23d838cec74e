"""Run a real ComfyUI server as a subprocess, with this pack in its custom_nodes.

Two host kinds:

* ``pypi`` (default): the packaged ComfyUI from PyPI (``comfyui`` distribution,
  modules ``comfy.cmd.*``), started from the interpreter running the tests::

      <bin>/comfyui --cpu -w WORKDIR --listen 127.0.0.1 --port PORT --disable-known-models

* ``upstream``: when ``IP2P_COMFYUI_DIR`` names an upstream ComfyUI checkout::

      $IP2P_COMFYUI_PYTHON main.py --cpu --listen 127.0.0.1 --port PORT
          --base-directory WORKDIR --database-url sqlite:///WORKDIR/user/comfyui.db

  (``IP2P_COMFYUI_PYTHON`` defaults to ``sys.executable``.)  ``--base-directory``
  makes upstream take custom_nodes/, models/, input/, output/, temp/ and user/
  from the work dir; ``--database-url`` keeps its sqlite file there too, so
  nothing is written into the checkout.

Either way every host gets a fresh work dir holding ``custom_nodes/`` (with the
pack symlinked in as ``ComfyUI-IP2P``), ``models/<folder>/``, ``input/``,
``output/`` and the server log ``comfyui.log``.

It talks to the server as `tools.comfy_client.ComfyClient` does (standard library only).

Usage::

    with ComfyHost(tmp_path_factory.mktemp("host")) as host:
        ckpt = host.add_model("checkpoints", path_to_ckpt)
        outputs = host.run({"1": {"class_type": ..., "inputs": {...}}})
        files = host.output_files(outputs)
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .comfy_client import ComfyClient, HostError

#: The pack under test: the repository root (this file lives in <root>/tools/).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Folder name the pack gets inside custom_nodes/.
PACK_NAME = "ComfyUI-IP2P"

ENV_COMFYUI_DIR = "IP2P_COMFYUI_DIR"
ENV_COMFYUI_PYTHON = "IP2P_COMFYUI_PYTHON"

_LOG_NAME = "comfyui.log"
# Runs the command after asking Linux to kill it when its parent dies (prctl PR_SET_PDEATHSIG,
# kept across exec); exits at once if the parent (argv[1]) is already gone.
_DIE_WITH_PARENT = ("import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGKILL); "
                    "os.getppid() == int(sys.argv[1]) or sys.exit(1); os.execvp(sys.argv[2], sys.argv[2:])")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pypi_command(python: str) -> list[str]:
    """The PyPI package's ``comfyui`` console script next to ``python``; else
    ``python -m comfy.cmd.main`` (same entry point, also works)."""
    script = Path(python).parent / "comfyui"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [python, "-m", "comfy.cmd.main"]


class ComfyHost(ComfyClient):
    """A ComfyUI server subprocess on 127.0.0.1, in a fresh work dir under ``base_dir``.

    Parameters:
        base_dir: parent directory for the fresh work dir (e.g. from
            ``tmp_path_factory.mktemp``); created if missing.
        pack_dir: what ``custom_nodes/ComfyUI-IP2P`` links to (default: the repo root).
        pack: False puts no pack into custom_nodes at all.
        comfyui_dir: upstream checkout; default ``$IP2P_COMFYUI_DIR``; if unset,
            the PyPI host is used.
        python: interpreter for the upstream host; default ``$IP2P_COMFYUI_PYTHON``
            or ``sys.executable``. For the PyPI host: the interpreter whose
            ``comfyui`` console script is used (default ``sys.executable``).
        extra_args: appended to the command line.
        env: extra environment variables for the server process.
        startup_timeout: seconds to wait for the HTTP server to answer.
        cpu: ``--cpu`` (the tests); False lets the server use the GPUs it sees.
        die_with_parent: on Linux, the server is killed when the process that started it dies
            (a Ray actor killed hard must not leave its server running).
    """

    def __init__(self, base_dir: os.PathLike | str, *, pack_dir: os.PathLike | str | None = None,
                 pack: bool = True, comfyui_dir: os.PathLike | str | None = None,
                 python: str | None = None, extra_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, startup_timeout: float = 300.0,
                 cpu: bool = True, die_with_parent: bool = False):
        super().__init__(url="")  # the URL comes with the port, when the server starts
        base_dir = Path(base_dir)
        base_dir.mkdir(parents=True, exist_ok=True)
        # realpath: the hosts report/resolve paths from the real location.
        self.work_dir = Path(tempfile.mkdtemp(prefix="comfy-", dir=base_dir)).resolve()
        self.custom_nodes_dir = self.work_dir / "custom_nodes"
        self.models_dir = self.work_dir / "models"
        self.input_dir = self.work_dir / "input"
        self.output_dir = self.work_dir / "output"
        self.temp_dir = self.work_dir / "temp"
        self.user_dir = self.work_dir / "user"
        for d in (self.custom_nodes_dir, self.models_dir, self.input_dir, self.output_dir,
                  self.user_dir, self.work_dir / "hf_cache"):
            d.mkdir(parents=True, exist_ok=True)
        self.log_path = self.work_dir / _LOG_NAME

        if comfyui_dir is None:
            comfyui_dir = os.environ.get(ENV_COMFYUI_DIR) or None
        self.comfyui_dir = Path(comfyui_dir).resolve() if comfyui_dir else None
        self.kind = "upstream" if self.comfyui_dir else "pypi"
        if self.comfyui_dir is not None:
            if not (self.comfyui_dir / "main.py").is_file():
                raise HostError(f"{ENV_COMFYUI_DIR}={self.comfyui_dir} has no main.py",
                                kind="startup")
            self.python = python or os.environ.get(ENV_COMFYUI_PYTHON) or sys.executable
        else:
            self.python = python or sys.executable

        self.pack_dir: Path | None = None
        if pack:
            self.pack_dir = Path(pack_dir).resolve() if pack_dir is not None else REPO_ROOT
            os.symlink(self.pack_dir, self.custom_nodes_dir / PACK_NAME,
                       target_is_directory=True)

        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.cpu = cpu
        self.die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._log_file = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        """The command line the server is started with."""
        common = [*(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1", "--port", str(port)]
        if self.kind == "upstream":
            db = self.user_dir / "comfyui.db"
            cmd = [self.python, str(self.comfyui_dir / "main.py"), *common,
                   "--base-directory", str(self.work_dir),
                   "--database-url", f"sqlite:///{db}"]
        else:
            # --disable-known-models: the PyPI package otherwise lists (and
            # downloads on use) a catalogue of hub models beside local files.
            cmd = [*_pypi_command(self.python), "-w", str(self.work_dir), *common, "--disable-known-models"]
        if self.die_with_parent:
            cmd = [self.python, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]
        return cmd + self.extra_args

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
            "TQDM_DISABLE": "1",
            # an empty hub cache of its own: hermetic, and quiets the PyPI host's
            # CacheNotFound tracebacks for its hub-listing loader nodes
            "HF_HUB_CACHE": str(self.work_dir / "hf_cache"),
        })
        # The test interpreter's venv must not leak into an upstream host's python.
        if self.kind == "upstream":
            env.pop("PYTHONPATH", None)
            env.pop("VIRTUAL_ENV", None)
            # no __pycache__ written into the checkout
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(self.extra_env)
        return env

    def start(self) -> "ComfyHost":
        if self.proc is not None:
            raise RuntimeError("host already started")
        attempts = 3
        for attempt in range(attempts):
            self.port = _free_port()
            cmd = self.command(self.port)
            self._log_file = open(self.log_path, "ab")
            self._log_file.write(("$ " + " ".join(cmd) + "\n").encode())
            self._log_file.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                cmd, cwd=self.work_dir, env=self._environment(), stdin=subprocess.DEVNULL,
                stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                self._wait_ready()
            except HostError as exc:
                self.stop()
                retry = "address already in use" in (exc.log_tail or "").lower()
                if retry and attempt + 1 < attempts:
                    continue
                raise
            self.startup_seconds = time.monotonic() - t0
            return self
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                tail = self.log_tail(60)
                raise HostError(f"ComfyUI ({self.kind}) exited with code {rc} during start-up; "
                                f"log {self.log_path}:\n{tail}", kind="startup", log_tail=tail)
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=5) as r:
                    if r.status == 200:
                        json.loads(r.read())
                        return
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                tail = self.log_tail(60)
                raise HostError(f"ComfyUI ({self.kind}) did not answer on {self.url} within "
                                f"{self.startup_timeout:.0f}s; log {self.log_path}:\n{tail}",
                                kind="startup", log_tail=tail)
            time.sleep(0.25)

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server's process group; kill it if it lingers."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(10)
            else:
                # the leader is gone; make sure no child it left behind survives
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "ComfyHost":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _request(self, method: str, path: str, body: Any = None,
                 timeout: float = 60.0) -> tuple[int, Any]:
        if self.proc is None:
            raise RuntimeError("host not started")
        return super()._request(method, path, body, timeout)

    def log_tail(self, n: int = 80) -> str:
        """The last ``n`` lines of the server log."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    # ------------------------------------------------------------------ files
    def add_model(self, folder: str, src: os.PathLike | str, name: str | None = None) -> str:
        """Symlink ``src`` into ``models/<folder>/`` (``name`` may hold a sub-path, '/'
        separated) and return the name the host lists it under (what a loader's
        ``*_name`` input takes)."""
        src = Path(src).resolve()
        if not src.exists():
            raise FileNotFoundError(src)
        name = name or src.name
        dest = self.models_dir / folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        os.symlink(src, dest, target_is_directory=src.is_dir())
        listed = Path(name).as_posix()
        if self.running and self.kind == "upstream" and not src.is_dir():  # it lists files only
            # upstream can list a folder: check the host sees it (404 = unknown folder key)
            status, files = self._request("GET", "/models/" + urllib.parse.quote(folder))
            if status == 200 and isinstance(files, list) and listed not in files:
                raise HostError(f"model {listed!r} symlinked into {dest.parent} but host lists "
                                f"{folder}: {files}", kind="http", payload=files)
        self._object_info = None
        return listed

    def remove_model(self, folder: str, name: str, *, delete_target: bool = False) -> None:
        """Undo `add_model`: drop the symlink and, with ``delete_target``, the file or folder it
        points at (a model a test made, gigabytes that would otherwise stay until the run ends)."""
        link = self.models_dir / folder / name
        target = link.resolve()
        link.unlink()
        if delete_target:
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        self._object_info = None

    def add_input(self, src: os.PathLike | str, name: str | None = None) -> str:
        """Copy ``src`` into ``input/`` and return the name LoadImage-style nodes take."""
        src = Path(src)
        name = name or src.name
        dest = self.input_dir / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        self._object_info = None
        return Path(name).as_posix()

    def output_files(self, outputs: Mapping[str, Any], types: Iterable[str] | None = None
                     ) -> list[Path]:
        """Paths of the files a run's ``outputs`` name (SaveImage ``images``, SaveLatent
        ``latents``, ...: any list of dicts with ``filename``/``subfolder``/``type``).
        ``type`` "output" resolves under output/, "temp" under temp/, "input" under
        input/. ``types`` limits which types are returned (default: all)."""
        roots = {"output": self.output_dir, "temp": self.temp_dir, "input": self.input_dir}
        wanted = set(types) if types is not None else None
        paths: list[Path] = []
        for node_id in outputs:
            node_out = outputs[node_id]
            if not isinstance(node_out, Mapping):
                continue
            for items in node_out.values():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if not isinstance(item, Mapping) or "filename" not in item:
                        continue
                    kind = item.get("type", "output")
                    if wanted is not None and kind not in wanted:
                        continue
                    root = roots.get(kind)
                    if root is None:
                        raise HostError(f"node {node_id}: unknown output type {kind!r}: {item}",
                                        kind="http", payload=item)
                    path = (root / (item.get("subfolder") or "") / item["filename"]).resolve()
                    if root.resolve() not in path.parents:
                        raise HostError(f"node {node_id}: output escapes {root}: {item}",
                                        kind="http", payload=item)
                    paths.append(path)
        return paths
