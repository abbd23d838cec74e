"""Loads UI-format workflows into the frontend a ComfyUI host serves (headless Chromium) and reports back.

Either host serves one: the PyPI package its bundled 2024 frontend, upstream its frontend
package. It needs Node.js and ``playwright-core`` (in ``.cache/frontend``, or on ``NODE_PATH``)
and Chromium (``$IP2P_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH);
``harness/frontend_setup.sh`` installs them.

``render(host, files)`` returns, per file, the frontend's ``graphToPrompt()`` output, its own
re-serialisation of the graph, node sizes against ``computeSize()`` and page errors.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.comfy_host import REPO_ROOT

SCRIPT = Path(__file__).resolve().parent / "frontend_check.mjs"
NODE_MODULES = REPO_ROOT / ".cache" / "frontend"


def chromium() -> str | None:
    return os.environ.get("IP2P_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """Why the frontend check cannot run here, or None."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    if chromium() is None:
        return "no Chromium (set IP2P_CHROMIUM or install the chromium package)"
    found = subprocess.run([node, "-e", "require.resolve('playwright-core')"], cwd=NODE_MODULES
                           if NODE_MODULES.is_dir() else REPO_ROOT, env=_env(), capture_output=True)
    if found.returncode != 0:
        return "playwright-core is not installed (bash harness/frontend_setup.sh installs it)"
    return None


def _env() -> dict:
    env = dict(os.environ)
    paths = [str(NODE_MODULES / "node_modules")] + ([env["NODE_PATH"]] if env.get("NODE_PATH") else [])
    env["NODE_PATH"] = os.pathsep.join(paths)
    return env


def render(host, files, screenshots: Path | None = None, timeout: float = 600) -> dict:
    """{str(file): {"prompt", "workflow", "sizes", "errors", "screenshot"}} from the real frontend."""
    reason = missing()
    if reason:
        raise RuntimeError(f"cannot run the frontend check: {reason}")
    if screenshots is not None:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ip2p-frontend-") as work:
        job = Path(work) / "job.json"
        job.write_text(json.dumps({"url": host.url, "chromium": chromium(),
                                   "files": [str(Path(f).resolve()) for f in files],
                                   "screenshots": str(Path(screenshots).resolve()) if screenshots else None}))
        cwd = NODE_MODULES if NODE_MODULES.is_dir() else REPO_ROOT
        done = subprocess.run(["node", str(SCRIPT), str(job)], cwd=cwd, env=_env(), capture_output=True,
                              text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"frontend_check.mjs failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)
