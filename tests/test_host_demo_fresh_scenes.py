"""Does the demo model edit the shape it is told to, and nothing else, on scenes nobody picked?

The first scenes of each kind of edit from the test draw (`synthetic_shapes.evaluation_pairs`:
shape sizes varied, held-out phrasings among them), edited through the pack's nodes in a real host
with the paper's scales, 20 steps, and judged with the strict score (`training.evaluate_edits`: the
named change made and every region the instruction does not name kept). Each kind must reach a
count of successes, so a model that edits worse than the shipped one fails CI. The counts are set
from the model's success rates on the validation pairs, not from these test scenes.
"""
import numpy as np
import pytest

from benchmarks.demo_quality import pack_edits
from training.evaluate_edits import score
from training.synthetic_shapes import EDIT_KINDS, evaluation_pairs

pytestmark = pytest.mark.host
PER_KIND = 8
PRESETS = ("balanced", "fast")
# Of PER_KIND scenes, at least this many right: the count a model at the shipped model's success
# rate on the validation pairs reaches 95 times in 100 (binomial; the rate as (successes + 1) /
# (pairs + 2), from benchmarks/RESULTS.md, "Choosing the demo model"), per sampler.
REQUIRED = {"euler": {"recolor": 3, "remove": 3, "background": 4, "night": 6, "move": 2, "add": 6},
            "euler_ancestral": {"recolor": 1, "remove": 4, "background": 4, "move": 2, "add": 4}}
SAMPLERS = tuple(REQUIRED)
# Not required: night with Euler ancestral, which at text_cfg 7.5 the demo model fails almost always (its
# text term overshoots; benchmarks/RESULTS.md, "Choosing the demo model").


def first_of_each_kind(count: int):
    pairs = evaluation_pairs("test", 40 * count)
    chosen = [pair for kind in EDIT_KINDS for pair in [p for p in pairs if p.edit.kind == kind][:count]]
    assert len(chosen) == count * len(EDIT_KINDS)
    return chosen


def first_index_of_each_kind(pairs) -> list[int]:
    return [next(i for i, p in enumerate(pairs) if p.edit.kind == kind) for kind in EDIT_KINDS]


@pytest.fixture(scope="module")
def fresh_scene_edits(host, tmp_path_factory):
    pairs = first_of_each_kind(PER_KIND)
    folder = tmp_path_factory.mktemp("fresh_scenes")
    names = []
    for index, pair in enumerate(pairs):
        pair.original.save(folder / f"fresh{index:03d}.png")
        names.append(host.add_input(folder / f"fresh{index:03d}.png"))
    edits = {sampler: pack_edits(host, names, pairs, sampler=sampler) for sampler in SAMPLERS}
    for preset in PRESETS:
        fewer = {"20": {"class_type": "IP2PFewerPasses", "inputs": {"preset": preset}}}
        edits[preset] = pack_edits(host, names, pairs, sampler_inputs={"fewer_passes": ["20", 0]}, nodes=fewer)
    first = first_index_of_each_kind(pairs)
    edits["image_cfg 5"] = pack_edits(host, [names[i] for i in first], [pairs[i] for i in first], image_cfg=5.0)
    return pairs, edits


def failures(fresh_scene_edits, kind: str, sampler: str) -> tuple[int, list[str]]:
    pairs, edits = fresh_scene_edits
    results = [(pair, score(pair, edit)) for pair, edit in zip(pairs, edits[sampler]) if pair.edit.kind == kind]
    return len(results), [pair.instruction for pair, scored in results if not scored.success]


@pytest.mark.parametrize("sampler, kind", [(s, k) for s in SAMPLERS for k in REQUIRED[s]])
def test_fresh_scenes_get_the_edit_asked_for_and_nothing_else(fresh_scene_edits, kind, sampler):
    count, failed = failures(fresh_scene_edits, kind, sampler)
    assert count - len(failed) >= REQUIRED[sampler][kind], f"{len(failed)} of {count} failed: {failed}"


@pytest.mark.parametrize("preset", PRESETS)
def test_the_fewer_passes_presets_keep_the_edits(fresh_scene_edits, preset):
    """Euler, as the full edits it is compared with: at most two fewer successes over all scenes, and
    no more collateral damage on average than a fifth above the full edit's."""
    pairs, edits = fresh_scene_edits
    full, fewer = ([score(p, e) for p, e in zip(pairs, edits[key])] for key in ("euler", preset))
    assert sum(s.success for s in fewer) >= sum(s.success for s in full) - 2
    collateral = lambda scores: np.nanmean([s.collateral_mse for s in scores])  # noqa: E731 (night names all)
    assert collateral(fewer) <= 1.2 * collateral(full)


def test_a_higher_image_cfg_keeps_more_of_the_input(fresh_scene_edits):
    """With the instruction, on the first scene of each kind: image_cfg 5 changes less than 1.5."""
    pairs, edits = fresh_scene_edits
    first = first_index_of_each_kind(pairs)

    def change(results) -> float:
        return float(np.mean([np.mean((np.asarray(r, float) - np.asarray(pairs[i].original, float)) ** 2)
                              for i, r in zip(first, results)]))

    assert change(edits["image_cfg 5"]) < change([edits["euler"][i] for i in first])
