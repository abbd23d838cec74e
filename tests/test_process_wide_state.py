"""A node pack runs inside the user's server: its code changes nothing process-wide.

No allocator settings, environment variables, torch-wide switches, host flags or host module
globals: such changes reach every thread and every other pack's models for the life of the
process. Patches go on model clones instead (tests/test_host_compose.py). This reads every file
ComfyUI can import (the pack's __init__.py, nodes/ and ip2p_core/ with their sub-packages) for the
calls that would do it.
"""
import re
from pathlib import Path

import pytest
from test_pack_imports import pack_modules

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    r"\bmallopt\b|\bmalloc_trim\b|\bctypes\b": "C library or allocator settings",
    r"os\.environ\[[^\]]+\]\s*=(?!=)|os\.environ\.(update|setdefault|pop)\(|os\.(putenv|unsetenv)\(": "environment",
    r"torch\.(set_num_threads|set_num_interop_threads|set_default_dtype|set_default_device|set_flush_denormal"
    r"|use_deterministic_algorithms|set_float32_matmul_precision)\(": "torch-wide settings",
    r"torch\.backends\.[\w.]+\s*=(?!=)": "torch backend switches",
    r"\bargs\.\w+\s*=(?!=)": "the host's command-line flags",
    r"\bcomfy\.[\w.]+\s*=(?!=)": "the host's module globals",
}
SOURCES = sorted(pack_modules(REPO))


def test_the_sources_are_every_file_comfyui_imports():
    assert {"__init__.py", "nodes/host.py", "ip2p_core/inference/guidance.py", "ip2p_core/formats/checkpoint_info.py"} \
        <= {str(p.relative_to(REPO)) for p in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_pack_code_changes_nothing_process_wide(source):
    found = [f"line {number}: {line.strip()} ({what})"
             for number, line in enumerate(source.read_text().splitlines(), start=1)
             for pattern, what in FORBIDDEN.items() if re.search(pattern, line)]
    assert not found, found


def test_the_check_finds_what_it_looks_for():
    lines = ["libc.mallopt(-1, 0)", "os.environ['X'] = '1'", "torch.set_num_threads(1)",
             "torch.backends.cudnn.benchmark = True", "args.cpu = True", "comfy.model_management.vram_state = 0"]
    assert all(any(re.search(p, line) for p in FORBIDDEN) for line in lines)
    assert not any(re.search(p, "if args.cpu == True:") for p in FORBIDDEN)
