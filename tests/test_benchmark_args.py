"""bench_edit's command line: a mistyped option stops with a sentence, before any host starts."""
import pytest

from benchmarks.bench_edit import parse_args


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
