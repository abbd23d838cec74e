"""training.evaluate_edits: the drawn target passes, the unchanged input fails, every kind of edit; an edit
that also changes what the instruction did not name fails, however right the named part is."""
from dataclasses import replace

import numpy as np
from PIL import Image

from training.evaluate_edits import COLLATERAL_TOLERANCE, score, summarise, summarise_by_kind, unnamed_regions
from training.synthetic_shapes import COLORS, EDIT_KINDS, evaluation_pairs, make_pairs, night

PAIRS = make_pairs(120, seed=8, held_out=True, varied=True)


def test_target_succeeds_and_the_input_fails_for_every_kind():
    for kind in EDIT_KINDS:
        pairs = [p for p in PAIRS if p.edit.kind == kind]
        target, unchanged = summarise([score(p, p.edited) for p in pairs]), summarise([score(p, p.original) for p in pairs])
        assert target.success == target.named_change == 1.0 and target.mse == 0.0, kind
        assert unchanged.success == unchanged.named_change == 0.0, kind
        assert unchanged.mse == unchanged.identity_mse > 0, kind


def test_recolouring_another_shape_too_fails_though_the_named_one_is_right():
    pairs = [p for p in PAIRS if p.edit.kind == "recolor" and len(p.after.shapes) > 1]
    assert len(pairs) >= 5
    for pair in pairs:
        index = next(i for i, s in enumerate(pair.after.shapes) if s.kind != pair.edit.shape)
        other = pair.after.shapes[index]
        color = next(c for c in COLORS if c not in (other.color, pair.after.background))
        spoilt = replace(pair.after, shapes=pair.after.shapes[:index] + (replace(other, color=color),)
                         + pair.after.shapes[index + 1:]).draw(64)
        result = score(pair, spoilt)
        assert result.named_change and not result.success, pair.instruction
        assert result.worst_unnamed_mse > COLLATERAL_TOLERANCE and result.collateral_mse > 0


def test_painting_the_whole_picture_fails():
    for pair in [p for p in PAIRS if p.edit.kind in ("recolor", "add")]:
        painted = score(pair, Image.new("RGB", (64, 64), COLORS[pair.edit.color]))
        assert painted.named_change and not painted.success, pair.instruction


def test_night_that_also_recolours_a_shape_fails():
    pair = next(p for p in PAIRS if p.edit.kind == "night" and p.before.shapes)
    shape = pair.before.shapes[0]
    color = next(c for c in COLORS if c not in (shape.color, pair.before.background))
    wrong = night(replace(pair.before, shapes=(replace(shape, color=color),) + pair.before.shapes[1:]).draw(64))
    assert not score(pair, wrong).success
    assert np.isnan(score(pair, pair.edited).collateral_mse)  # night names every pixel


def test_every_unnamed_region_lies_outside_what_the_target_changed():
    for pair in PAIRS:
        changed = np.asarray(pair.edited) != np.asarray(pair.original)
        for mask in unnamed_regions(pair, 64):
            assert mask.any() and (pair.edit.kind == "night" or not changed.any(axis=2)[mask].any()), pair.instruction


def test_an_edit_that_also_changes_the_rest_shows_in_the_collateral_error():
    pair = next(p for p in PAIRS if p.edit.kind == "recolor")
    clean, spoilt = score(pair, pair.edited), score(pair, night(pair.edited))
    assert clean.collateral_mse == 0.0 < spoilt.collateral_mse
    assert not spoilt.success


def test_the_overall_line_is_the_mean_over_kinds_not_over_pairs():
    pairs = evaluation_pairs("validation", 60)
    scores = [score(p, p.edited if p.edit.kind == "night" else p.original) for p in pairs]
    by_kind = summarise_by_kind(scores)
    assert set(by_kind) == {*EDIT_KINDS, "overall"}
    assert by_kind["overall"].success == 1 / len(EDIT_KINDS)  # night alone succeeds, whatever its share of pairs
    assert by_kind["night"].success == 1.0 and by_kind["recolor"].success == 0.0
    kinds = [by_kind[kind] for kind in EDIT_KINDS]
    assert by_kind["overall"].ratio == sum(k.ratio for k in kinds) / len(kinds)  # not the pooled MSEs' ratio


def test_a_result_of_another_size_is_compared_at_the_pair_size():
    pair = PAIRS[0]
    big = pair.edited.resize((256, 256), Image.Resampling.NEAREST)
    assert score(pair, big).success
