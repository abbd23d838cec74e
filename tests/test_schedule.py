import pytest

from ip2p_core.errors import IP2PUserError
from ip2p_core.inference.schedule import CfgSchedule, parse_values, step_index


def test_constant_schedule_repeats_the_value():
    assert CfgSchedule("constant", 7.5).per_step(4) == [7.5] * 4


def test_linear_schedule_runs_from_start_at_the_first_step_to_end_at_the_last():
    assert CfgSchedule("linear", 1.0, 2.0).per_step(5) == pytest.approx([1.0, 1.25, 1.5, 1.75, 2.0])
    assert CfgSchedule("linear", 1.0, 2.0).per_step(1) == [1.0]


def test_list_schedule_uses_the_values_as_given():
    assert CfgSchedule("list", 0, values=(1.2, 1.4, 1.6)).per_step(3) == [1.2, 1.4, 1.6]


def test_list_of_the_wrong_length_names_both_counts():
    with pytest.raises(IP2PUserError, match="lists 3 values but the sampler runs 4 steps"):
        CfgSchedule("list", 0, values=(1.0, 2.0, 3.0)).per_step(4)


def test_empty_list_and_unknown_kind_are_refused():
    with pytest.raises(IP2PUserError, match="needs per-step values"):
        CfgSchedule("list", 0)
    with pytest.raises(IP2PUserError, match="must be one of constant, linear, list"):
        CfgSchedule("cosine", 1.0)


def test_values_parse_from_commas_and_lines_and_name_a_bad_entry():
    assert parse_values("7.5, 7\n6.5;6") == (7.5, 7.0, 6.5, 6.0)
    with pytest.raises(IP2PUserError, match="'seven' in the schedule values is not a number"):
        parse_values("7.5, seven")


def test_step_index_maps_model_evaluations_to_their_step():
    sigmas = [14.6, 7.0, 3.0, 1.0, 0.0]
    assert [step_index(sigmas, s) for s in (14.6, 7.0, 3.0, 1.0)] == [0, 1, 2, 3]
    assert step_index(sigmas, 10.0) == 0  # a midpoint evaluation (Heun, DPM-2) inside step 0
    assert step_index(sigmas, 0.5) == 3
