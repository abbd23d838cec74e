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
