"""training.synthetic_shapes: drawn edit pairs with exact targets, several phrasings per edit."""
import numpy as np

from training.paired_data import load_pair, read_pairs
from training.synthetic_shapes import (
    COLORS,
    EDIT_KINDS,
    EVERYDAY_PHRASINGS,
    PHRASINGS,
    SIZE_SPREAD,
    SPLIT_SEEDS,
    evaluation_pairs,
    held_out_phrasings,
    make_pairs,
    night,
    night_color,
    shape_mask,
    write_pair_folder,
)


def phrasing_of(pair) -> str:
    edit = pair.edit
    for template in PHRASINGS[edit.kind] + EVERYDAY_PHRASINGS[edit.kind]:
        if template.format(shape=edit.shape, color=edit.color, direction=edit.direction,
                           place=edit.place) == pair.instruction:
            return template
    raise AssertionError(f"{pair.instruction!r} is no phrasing of {edit.kind}")


def test_pairs_are_deterministic_well_formed_and_cover_every_kind():
    first, again = make_pairs(120, seed=3), make_pairs(120, seed=3)
    assert [p.instruction for p in first] == [p.instruction for p in again]
    assert all(a.original.tobytes() == b.original.tobytes() for a, b in zip(first, again))
    assert {p.edit.kind for p in first} == set(EDIT_KINDS)
    for pair in first:
        assert pair.original.size == pair.edited.size == (64, 64)
        assert pair.original.tobytes() != pair.edited.tobytes(), pair.instruction  # every instruction changes something
        assert pair.before.draw(64).tobytes() == pair.original.tobytes()
        assert pair.after.draw(64).tobytes() == pair.edited.tobytes()


def test_training_draws_never_use_a_held_out_phrasing():
    training = make_pairs(300, seed=1)
    assert not any(p.held_out_phrasing for p in training)
    assert all(phrasing_of(p) not in held_out_phrasings(p.edit.kind) for p in training)
    evaluation = make_pairs(600, seed=2, held_out=True)
    assert all(p.held_out_phrasing == (phrasing_of(p) in held_out_phrasings(p.edit.kind)) for p in evaluation)
    for kind in EDIT_KINDS:  # more than one held-out phrasing per kind, each drawn
        assert len(held_out_phrasings(kind)) > 1
        assert {phrasing_of(p) for p in evaluation if p.edit.kind == kind} >= set(held_out_phrasings(kind)), kind
        assert not set(EVERYDAY_PHRASINGS[kind]) & set(PHRASINGS[kind])


def test_the_three_splits_are_disjoint_draws():
    assert len(set(SPLIT_SEEDS.values())) == 3
    training = {(p.original.tobytes(), p.instruction) for p in make_pairs(3000, SPLIT_SEEDS["train"])}
    for split in ("validation", "test"):
        assert not {(p.original.tobytes(), p.instruction) for p in evaluation_pairs(split, 300)} & training, split
    validation, test = evaluation_pairs("validation", 50), evaluation_pairs("test", 50)
    assert [p.instruction for p in validation] != [p.instruction for p in test]


def test_evaluation_scenes_vary_the_shape_size_the_plain_training_draw_keeps_fixed():
    training_sizes = {s.size for p in make_pairs(300, SPLIT_SEEDS["train"]) for s in p.before.shapes}
    evaluation_sizes = {s.size for p in evaluation_pairs("test", 300) for s in p.before.shapes}
    (side,) = training_sizes
    spread = round(side * SIZE_SPREAD)
    assert evaluation_sizes == set(range(side - spread, side + spread + 1))


def test_each_edit_changes_what_it_names():
    for pair in make_pairs(200, seed=4):
        edit, before, after = pair.edit, pair.before, pair.after
        named = [s for s in before.shapes if s.kind == edit.shape]
        if edit.kind == "recolor":
            (shape,) = named
            assert [s.color for s in after.shapes if s.kind == edit.shape] == [edit.color] != [shape.color]
        elif edit.kind == "remove":
            assert edit.shape not in {s.kind for s in after.shapes} and len(after.shapes) == len(before.shapes) - 1
        elif edit.kind == "background":
            assert after.background == edit.color != before.background and after.shapes == before.shapes
        elif edit.kind == "night":
            assert np.array_equal(np.asarray(pair.edited), np.asarray(night(pair.original)))
        elif edit.kind == "move":
            (shape,) = named
            (moved,) = [s for s in after.shapes if s.kind == edit.shape]
            assert {"left": (-16, 0), "right": (16, 0), "up": (0, -16), "down": (0, 16)}[edit.direction] == \
                (moved.x - shape.x, moved.y - shape.y)
        else:
            added = after.shapes[-1]
            assert after.shapes[:-1] == before.shapes and (added.kind, added.color) == (edit.shape, edit.color)
            assert (added.x < 32, added.y < 32) == ("left" in edit.place, "top" in edit.place)


def test_masks_and_night_colours_match_the_drawing():
    pair = next(p for p in make_pairs(50, seed=5) if p.edit.kind == "recolor")
    shape = next(s for s in pair.after.shapes if s.kind == pair.edit.shape)
    pixels = np.asarray(pair.edited)[shape_mask(shape, 64)]
    assert (pixels == COLORS[pair.edit.color]).all()
    dark = np.asarray(night(pair.original))[shape_mask(next(s for s in pair.before.shapes if s.kind == shape.kind), 64)]
    assert (dark == night_color(COLORS[next(s for s in pair.before.shapes if s.kind == shape.kind).color])).all()


def test_written_folder_reads_back(tmp_path):
    pairs = make_pairs(3, seed=0, size=16)
    read = read_pairs(write_pair_folder(tmp_path, pairs))
    assert [p.instruction for p in read] == [p.instruction for p in pairs]
    original, edited = load_pair(read[1])
    assert original.tobytes() == pairs[1].original.tobytes() and edited.tobytes() == pairs[1].edited.tobytes()


def test_the_example_picture_is_the_example_scene():
    from PIL import Image

    from training.synthetic_shapes import example_scene
    from tools.comfy_host import REPO_ROOT

    drawn = np.asarray(example_scene().draw(64))
    assert np.array_equal(drawn, np.asarray(Image.open(REPO_ROOT / "examples" / "shapes.png").convert("RGB")))


def test_kind_weights_draw_the_kinds_in_proportion():
    weights = {"recolor": 2.0, "remove": 2.0, "background": 1.0, "move": 2.0, "add": 2.0}  # night left out
    kinds = [p.edit.kind for p in make_pairs(900, seed=5, kind_weights=weights)]
    assert "night" not in kinds
    share = {kind: kinds.count(kind) / len(kinds) for kind in weights}
    for kind, weight in weights.items():
        assert abs(share[kind] - weight / sum(weights.values())) < 0.04, (kind, share)
