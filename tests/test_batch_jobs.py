"""tools/batch_jobs.py: output names that follow from the edit, results written once, the manifest."""
import json

import pytest
from PIL import Image

from tools.batch_jobs import (
    Job,
    Manifest,
    Outcome,
    Tally,
    job_key,
    manifest_record,
    output_paths,
    write_once,
    write_pair,
)
from training.paired_data import read_pairs

PROMPT = {"1": {"class_type": "IP2PSampler", "inputs": {"seed": 1}}}


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "cat.jpg"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return path


def test_the_key_follows_the_picture_the_prompt_and_the_mask(picture, tmp_path):
    key = job_key(picture, None, PROMPT)
    assert key == job_key(picture, None, json.loads(json.dumps(PROMPT))), "the same edit, the same name"
    other_seed = {"1": {"class_type": "IP2PSampler", "inputs": {"seed": 2}}}
    assert len({key, job_key(picture, None, other_seed), job_key(picture, "f" * 64, PROMPT)}) == 3
    copy = tmp_path / "copy" / "cat.jpg"
    copy.parent.mkdir()
    copy.write_bytes(picture.read_bytes())
    assert job_key(copy, None, PROMPT) == key, "the folder it is read from does not matter"
    Image.new("RGB", (8, 8), (0, 0, 0)).save(copy)
    assert job_key(copy, None, PROMPT) != key, "new bytes under the same name are a new edit"


def test_results_are_written_whole_and_never_over_a_file(tmp_path, picture):
    job = Job(picture, "0123456789", ["make it red"])
    first, second = output_paths(tmp_path, job, [".png", ".png"])
    assert (first.name, second.name) == ("cat_edited_0123456789.png", "cat_edited_0123456789_2.png")
    write_once(first, b"one")
    with pytest.raises(FileExistsError):
        write_once(first, b"two")
    assert first.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.jpg", first.name], "no partial file left behind"


def test_the_manifest_knows_what_is_finished(tmp_path, picture):
    manifest = Manifest(tmp_path / "manifest.jsonl")
    assert manifest.finished(tmp_path) == set()
    done, failed, gone = (Job(picture, key, ["x"]) for key in ("a" * 10, "b" * 10, "c" * 10))
    (tmp_path / "done.png").write_bytes(b"x")
    settings = {"workflow": "w.json", "seed": [1]}
    manifest.append(manifest_record(done, Outcome(done.key, "w1", 1.0), [tmp_path / "done.png"], settings))
    manifest.append(manifest_record(failed, Outcome(failed.key, "w1", 1.0, error="bad"), [], settings))
    manifest.append(manifest_record(gone, Outcome(gone.key, "w2", 1.0), [tmp_path / "deleted.png"], settings))
    with open(manifest.path, "a") as handle:
        handle.write('{"key": "dddddddddd", "outp')  # a line a crash cut
    assert manifest.finished(tmp_path) == {done.key}, "failed, cut and deleted results are redone"
    record = json.loads(manifest.path.read_text().splitlines()[0])
    assert record["input"] == "cat.jpg" and record["worker"] == "w1" and record["seed"] == [1]


def test_a_result_as_a_training_pair(tmp_path, picture):
    job = Job(picture, "0123456789", ["make it red"])
    edited = tmp_path / "cat_edited_0123456789.png"
    Image.new("RGB", (8, 8), (0, 0, 200)).save(edited)
    write_pair(tmp_path / "pairs", job, edited)
    [pair] = read_pairs(tmp_path / "pairs")
    assert pair.instruction == "make it red"
    assert open(pair.original, "rb").read() == picture.read_bytes()
    with pytest.raises(FileExistsError):
        write_pair(tmp_path / "pairs", job, edited)


def test_the_summary_counts_per_worker(picture):
    tally = Tally(total=3, skipped=1)
    job = Job(picture, "a" * 10, ["x"])
    tally.add(job, Outcome(job.key, "w1", 2.0))
    retried = Job(picture, "b" * 10, ["x"], attempts=["w2: gone"])
    tally.add(retried, Outcome(retried.key, "w1", 4.0, error="bad"))
    text = tally.summary()
    assert text.startswith("1 edited, 1 failed, 1 skipped (finished before), 1 retried on another worker")
    assert "w1: 1 image(s), 2.00 s median" in text and "failed: cat.jpg" in text
