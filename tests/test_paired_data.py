import io
import json

import pytest
import torch
from PIL import Image

from ip2p_core.errors import IP2PUserError
from training.paired_data import Columns, PairTransform, load_pair, read_pairs


def _image(path, size=(8, 6), color=(255, 0, 0)):
    Image.new("RGB", size, color).save(path)
    return path


def _pair_folder(root, name, instruction="make it blue", sizes=((8, 6), (8, 6))):
    folder = root / name
    folder.mkdir(parents=True)
    _image(folder / "original.png", sizes[0])
    _image(folder / "edited.png", sizes[1], (0, 0, 255))
    (folder / "instruction.txt").write_text(instruction + "\n")
    return folder


def test_folder_of_pairs(tmp_path):
    _pair_folder(tmp_path, "b", "make it green")
    _pair_folder(tmp_path, "a")
    pairs = read_pairs(tmp_path)
    assert [p.instruction for p in pairs] == ["make it blue", "make it green"]
    original, edited = load_pair(pairs[0])
    assert original.getpixel((0, 0)) == (255, 0, 0) and edited.getpixel((0, 0)) == (0, 0, 255)


def test_pair_folder_missing_a_file(tmp_path):
    folder = _pair_folder(tmp_path, "a")
    (folder / "edited.png").unlink()
    with pytest.raises(IP2PUserError, match=r"lacks edited.png"):
        read_pairs(tmp_path)


def test_jsonl_and_csv_index(tmp_path):
    _image(tmp_path / "o.png")
    _image(tmp_path / "e.png")
    (tmp_path / "pairs.jsonl").write_text(json.dumps(
        {"original_image": "o.png", "edit_prompt": "turn it blue", "edited_image": "e.png"}) + "\n")
    (tmp_path / "pairs.csv").write_text("src,text,dst\no.png,turn it blue,e.png\n")
    from_jsonl = read_pairs(tmp_path / "pairs.jsonl")
    from_csv = read_pairs(tmp_path / "pairs.csv", Columns("src", "text", "dst"))
    assert from_jsonl[0].original == from_csv[0].original == tmp_path / "o.png"
    assert from_jsonl[0].instruction == from_csv[0].instruction == "turn it blue"


def test_missing_column_names_the_row_and_the_flags(tmp_path):
    (tmp_path / "pairs.jsonl").write_text(json.dumps({"original_image": "o.png", "edited_image": "e.png"}) + "\n")
    with pytest.raises(IP2PUserError, match=r"pairs.jsonl row 1 has no edit_prompt .*--instruction-column"):
        read_pairs(tmp_path / "pairs.jsonl")


def test_parquet_with_embedded_images(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    def png(color):
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    table = pa.Table.from_pylist([{"original_image": png((255, 0, 0)), "edit_prompt": "blue please",
                                   "edited_image": png((0, 0, 255))}])
    pq.write_table(table, tmp_path / "train.parquet")
    pairs = read_pairs(tmp_path / "train.parquet")
    original, edited = load_pair(pairs[0])
    assert pairs[0].instruction == "blue please" and edited.getpixel((1, 1)) == (0, 0, 255)


def test_pair_with_two_sizes_is_refused(tmp_path):
    _pair_folder(tmp_path, "a", sizes=((8, 6), (6, 8)))
    with pytest.raises(IP2PUserError, match=r"original image is 8x6 but the edited one is 6x8"):
        load_pair(read_pairs(tmp_path)[0])


def test_unreadable_image_names_the_file(tmp_path):
    folder = _pair_folder(tmp_path, "a")
    (folder / "original.png").write_bytes(b"not a png")
    with pytest.raises(IP2PUserError, match=r"cannot read .*original.png"):
        load_pair(read_pairs(tmp_path)[0])


def test_unknown_data_kinds(tmp_path):
    with pytest.raises(IP2PUserError, match="not found"):
        read_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "pairs.txt").write_text("x")
    with pytest.raises(IP2PUserError, match="must be a folder of pairs"):
        read_pairs(tmp_path / "pairs.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IP2PUserError, match="holds no training pairs"):
        read_pairs(tmp_path / "empty")


def test_transform_crops_and_flips_both_images_alike():
    gradient = Image.frombytes("RGB", (12, 8), bytes(range(256)) * 1 + bytes(12 * 8 * 3 - 256))
    transform = PairTransform(resolution=8, random_flip=True)
    for seed in range(6):
        original, edited = transform(gradient, gradient, torch.Generator().manual_seed(seed))
        assert original.shape == (3, 8, 8) and torch.equal(original, edited)
        assert original.min() >= -1 and original.max() <= 1
    crops = {tuple(transform(gradient, gradient, torch.Generator().manual_seed(s))[0][0, 0, :2].tolist())
             for s in range(12)}
    assert len(crops) > 1  # random crops and flips differ between draws


def test_transform_resizes_the_short_side():
    image = Image.new("RGB", (16, 8), (0, 255, 0))
    original, _ = PairTransform(resolution=16, center_crop=True)(image, image, torch.Generator())
    assert original.shape == (3, 16, 16)
