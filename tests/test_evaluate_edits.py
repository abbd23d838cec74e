"""training.evaluate_edits: the drawn target passes, the unchanged input fails, every kind of edit."""
from PIL import Image

from training.evaluate_edits import score, summarise
from training.synthetic_shapes import EDIT_KINDS, make_pairs, night

PAIRS = make_pairs(120, seed=8, held_out=True)


def test_target_succeeds_and_the_input_fails_for_every_kind():
    for kind in EDIT_KINDS:
        pairs = [p for p in PAIRS if p.edit.kind == kind]
        target, unchanged = summarise([score(p, p.edited) for p in pairs]), summarise([score(p, p.original) for p in pairs])
        assert target.success == 1.0 and target.mse == 0.0, kind
        assert unchanged.success == 0.0 and unchanged.mse == unchanged.identity_mse > 0, kind


def test_an_edit_that_also_changes_the_rest_shows_in_the_untouched_error():
    pair = next(p for p in PAIRS if p.edit.kind == "recolor")
    clean, spoilt = score(pair, pair.edited), score(pair, night(pair.edited))
    assert clean.untouched_mse == 0.0 < spoilt.untouched_mse
    assert not spoilt.success


def test_a_result_of_another_size_is_compared_at_the_pair_size():
    pair = PAIRS[0]
    big = pair.edited.resize((256, 256), Image.Resampling.NEAREST)
    assert score(pair, big).success
