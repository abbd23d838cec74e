"""Zero chunks of model files given back to the file system: the bytes read the same."""
import ctypes

import pytest

from training.sparse_files import HOLE_CHUNK, dig_holes, dig_holes_in

DATA = b"\x01" * 5000 + bytes(3 * HOLE_CHUNK) + b"\x02" * 5000


def test_dig_holes_frees_the_zero_chunks_and_keeps_the_bytes(tmp_path):
    path = tmp_path / "zeros_between.bin"
    path.write_bytes(DATA)
    freed = dig_holes(path)
    if freed == 0:
        pytest.skip("this file system cannot punch holes")
    # The first chunk holds the leading ones; the two chunks after it are all zero; the rest is ragged.
    assert freed == 2 * HOLE_CHUNK
    assert path.read_bytes() == DATA
    assert path.stat().st_blocks * 512 <= len(DATA) - 2 * HOLE_CHUNK + 8192


def test_a_folder_s_safetensors_files_only(tmp_path):
    (tmp_path / "text_encoder").mkdir()
    model, other = tmp_path / "text_encoder" / "model.safetensors", tmp_path / "notes.bin"
    model.write_bytes(DATA)
    other.write_bytes(DATA)
    if dig_holes_in(tmp_path) == 0:
        pytest.skip("this file system cannot punch holes")
    assert model.stat().st_blocks < other.stat().st_blocks
    assert model.read_bytes() == other.read_bytes() == DATA


def test_without_fallocate_the_file_is_left_as_it_is(tmp_path, monkeypatch):
    def no_libc(*args, **kwargs):
        raise OSError("no C library here")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    path = tmp_path / "zeros.bin"
    path.write_bytes(DATA)
    assert dig_holes(path) == 0
    assert path.read_bytes() == DATA
