"""bench_edit's command line: a mistyped option stops with a sentence, before any host starts; the
order its two modes start, use and stop the three processes in (test_benchmark_quick.py runs
--resident end to end); and how it reads the UNet calls each process counted."""
import pytest

from benchmarks.bench_edit import model_calls, parse_args, timetable


def test_host_env_takes_name_value_pairs():
    args = parse_args(["--quick", "--host-env", "MALLOC_MMAP_MAX_=0", "--host-env", "EMPTY="])
    assert args.host_env == {"MALLOC_MMAP_MAX_": "0", "EMPTY": ""}


@pytest.mark.parametrize("bad", ["MALLOC_MMAP_MAX_", "=0"])
def test_host_env_without_a_name_and_equals_sign_is_refused(bad, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--host-env", bad])
    assert f"'{bad}' is not NAME=VALUE (e.g. MALLOC_MMAP_MAX_=0)" in capsys.readouterr().err


def test_fewer_passes_names_a_preset_or_a_setting_of_the_fewer_passes_benchmark(capsys):
    args = parse_args(["--quick", "--fewer-passes", "text term to 0.5"])
    assert args.fewer_passes["text_end"] == 0.5 and args.fewer_passes["image_end"] == 1.0
    assert parse_args(["--quick", "--fewer-passes", "fast"]).fewer_passes["cache_interval"] == 2
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--fewer-passes", "faster please"])
    assert "--fewer-passes takes a preset (faithful, balanced, fast) or one of" in capsys.readouterr().err


CELLS = [(64, 1), (128, 2)]


def test_one_process_at_a_time_each_runs_every_cell_and_the_first_rotates():
    plan = timetable(["pack", "native", "diffusers"], CELLS, repeats=2, resident=False)
    cycle = lambda path, repeat: [("start", path), ("edit", path, 64, 1, repeat), ("edit", path, 128, 2, repeat),  # noqa: E731
                                  ("stop", path)]
    assert plan == (cycle("pack", 0) + cycle("native", 0) + cycle("diffusers", 0)
                    + cycle("native", 1) + cycle("diffusers", 1) + cycle("pack", 1))


def test_resident_starts_all_three_then_they_edit_cell_by_cell_back_to_back():
    plan = timetable(["pack", "native", "diffusers"], CELLS, repeats=2, resident=True)
    assert plan[:3] == [("start", "pack"), ("start", "native"), ("start", "diffusers")]
    assert plan[-3:] == [("stop", "pack"), ("stop", "native"), ("stop", "diffusers")]
    assert plan[3:-3] == [("edit", path, size, steps, repeat)
                          for repeat, order in enumerate([["pack", "native", "diffusers"],
                                                          ["native", "diffusers", "pack"]])
                          for size, steps in CELLS for path in order]


def test_the_counted_unet_calls_tell_one_batch_of_three_from_three_calls_of_one():
    one_call = model_calls([[3, 0.5], [3, 0.5]], steps=2)
    three_calls = model_calls([[1, 0.2]] * 6, steps=2)
    assert (one_call["model_calls_per_step"], one_call["batch"], one_call["unet_seconds"]) == (1, [3], 1.0)
    assert (three_calls["model_calls_per_step"], three_calls["batch"]) == (3, [1])
