"""tools/batch_edit.py --ray: a folder shared out over Ray actors, each with its own PyPI-host ComfyUI
on loopback, with the shipped demo model (a local Ray started by the tool, as a user runs it)."""
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from conftest import IP2P_CKPT
from PIL import Image

from tools import batch_edit
from tools.batch_ray import start_ray
from tools.comfy_host import REPO_ROOT
from training.paired_data import read_pairs
from training.synthetic_shapes import evaluation_pairs

pytestmark = pytest.mark.host
WORKFLOW = REPO_ROOT / "workflows" / "basic_edit.api.json"
INSTRUCTION = "make the square red"
WORKER_FOLDER = "ip2p-batch-worker-"  # in each worker server's command line (tools/batch_ray.py)


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    """One local Ray for the tests that run the tool in this process (the tool uses a Ray already
    started, as it would in a notebook), started as the tool starts its own; its session files
    (logs, this checkout unpacked as the working_dir) in a folder removed after these tests, not
    left in Ray's default folder."""
    folder = tempfile.mkdtemp(prefix="ray-")
    before = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = folder  # also for the tool run in a subprocess below
    start_ray("local")
    yield
    ray.shutdown()
    if before is None:
        del os.environ["RAY_TMPDIR"]
    else:
        os.environ["RAY_TMPDIR"] = before
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """Twelve test-split scenes like those the demo model learnt."""
    folder = tmp_path_factory.mktemp("scenes")
    for index, pair in enumerate(evaluation_pairs("test", 12, 64)):
        pair.original.save(folder / f"scene{index:02d}.png")
    return folder


def run(images: Path, out: Path, *extra) -> int:
    return batch_edit.main([str(a) for a in ("--workflow", WORKFLOW, "--input-dir", images, "--output-dir", out,
                                             "--instruction", INSTRUCTION, "--steps", 4, "--seed", 7, *extra)])


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def worker_servers() -> dict[int, str]:
    """pid -> command line of every running ComfyUI a batch worker started."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if WORKER_FOLDER in command and "--port" in command:
                found[int(entry.name)] = command
    return found


def test_two_workers_edit_each_image_once_as_one_server_does_even_when_a_server_dies(scenes, tmp_path, caplog):
    """One run with two workers, one of whose ComfyUI servers is killed (SIGKILL) after the second
    result: every image is still edited once, to the pixels one server makes alone."""
    alone, pooled, pairs = tmp_path / "alone", tmp_path / "pooled", tmp_path / "pairs"
    assert run(scenes, alone) == 0
    killed = []

    def kill_one_server_after_two_results():
        while not killed:
            if (pooled / "manifest.jsonl").is_file() and len(manifest(pooled)) >= 2 and (servers := worker_servers()):
                pid = min(servers)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_one_server_after_two_results, daemon=True)
    watcher.start()
    with caplog.at_level(logging.INFO, logger="ip2p.batch"):
        assert run(scenes, pooled, "--ray", "--workers", 2, "--pairs-out", pairs) == 0, "every image is edited"
    watcher.join(timeout=5)
    assert killed, "the watcher killed a server"

    records = manifest(pooled)
    assert sorted(r["input"] for r in records) == sorted(p.name for p in scenes.iterdir()), "each image once"
    assert all(r["error"] is None for r in records)
    written = sorted(p.name for p in pooled.iterdir() if p.suffix == ".png")
    assert written == sorted(o for r in records for o in r["outputs"]), "each image's output exists once"
    assert written == sorted(p.name for p in alone.iterdir() if p.suffix == ".png"), "the same names as one server"
    for name in written:
        assert np.array_equal(pixels(pooled / name), pixels(alone / name)), f"{name} differs from one server's"

    retried = [r for r in records if r["retried_after"]]
    assert len(retried) == 1, "the image the dead server held was edited again, elsewhere"
    [why] = retried[0]["retried_after"]
    lost = why.split(": ")[0]
    assert lost != retried[0]["worker"] and "server stopped answering" in why, why
    assert f"replaces {lost}" in caplog.text, "the dead server's worker was replaced by a new one"
    assert not worker_servers(), "every worker's server is stopped at the end"

    triplets = read_pairs(pairs)
    assert len(triplets) == 12 and {t.instruction for t in triplets} == {INSTRUCTION}
    for triplet in triplets:
        edited = Path(triplet.edited)
        assert np.array_equal(pixels(edited), pixels(pooled / f"{edited.parent.name}.png"))
        assert Path(triplet.original).read_bytes() == (scenes / (edited.parent.name.split("_edited_")[0] + ".png")
                                                       ).read_bytes()


def test_an_interrupted_batch_resumes_without_redoing_finished_images(scenes, tmp_path):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    for scene in sorted(scenes.iterdir())[:6]:
        (images / scene.name).write_bytes(scene.read_bytes())
    (images / "scene99_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    command = [sys.executable, "-m", "tools.batch_edit", "--workflow", WORKFLOW, "--input-dir", images,
               "--output-dir", out, "--instruction", INSTRUCTION, "--steps", 4, "--seed", 7,
               # the running Ray of these tests, as a cluster: the driver joins it from another process
               "--ray", ray.get_runtime_context().gcs_address, "--workers", 2]
    driver = subprocess.Popen([str(c) for c in command], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not ((out / "manifest.jsonl").is_file() and len(manifest(out)) >= 2):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()[0]
        time.sleep(0.05)
    driver.send_signal(signal.SIGINT)  # Ctrl-C
    log = driver.communicate(timeout=120)[0]
    assert driver.returncode == 130, log
    assert "rerun with --resume" in log
    assert not worker_servers(), "Ctrl-C stopped the workers' servers"
    first = manifest(out)
    finished = {r["input"]: r["outputs"] for r in first if r["error"] is None}
    assert len(first) < 7 and finished, "interrupted part-way"
    kept = {name: (out / name).read_bytes() for outputs in finished.values() for name in outputs}
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == sorted(kept), "no partial file left"

    with pytest.raises(SystemExit, match="pass --resume"):
        run(images, out)
    assert run(images, out, "--resume") == 1, "the broken image fails"
    records = manifest(out)[len(first):]
    assert not {r["input"] for r in records} & set(finished), "nothing finished is redone"
    assert {r["input"] for r in records if r["error"] is None} | set(finished) == {f"scene{i:02d}.png"
                                                                                   for i in range(6)}
    [broken] = [r for r in records if r["error"] is not None]
    assert broken["input"] == "scene99_broken.png" and "LoadImage" in broken["error"]
    assert all((out / name).read_bytes() == data for name, data in kept.items())


def test_workers_attached_to_running_servers_leave_out_one_that_does_not_answer(host, scenes, tmp_path, caplog):
    with socket.socket() as unused:  # a port nothing listens on once this closes
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}"
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    for scene in sorted(scenes.iterdir())[:4]:
        (images / scene.name).write_bytes(scene.read_bytes())
    with caplog.at_level(logging.INFO, logger="ip2p.batch"):
        assert run(images, out, "--ray", "--url", host.url, "--url", dead, "--checkpoint", IP2P_CKPT) == 0
    records = manifest(out)
    assert len(records) == 4 and {r["worker"] for r in records} == {host.url}
    assert f"worker {dead} retired" in caplog.text


def test_a_server_dies_with_the_process_that_started_it(tmp_path):
    """What keeps a hard-killed Ray actor from leaving its ComfyUI running (ComfyHost's die_with_parent)."""
    starter = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tools.comfy_host import ComfyHost; "
         f"host = ComfyHost({str(tmp_path)!r}, die_with_parent=True).start(); "
         "print(host.proc.pid, flush=True); time.sleep(600)"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    server = int(starter.stdout.readline())
    assert Path(f"/proc/{server}").exists()
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 20
    try:
        while alive(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(server), "the server outlived the process that started it"
    finally:
        if alive(server):
            os.killpg(server, signal.SIGKILL)
