#!/usr/bin/env bash
# Sets up .venv and the frontend check's tools if needed, and runs the whole test suite (unit,
# host, parity, behaviour, workflow and frontend tests) in two processes, a test file at a time
# each, the longest files first in tests/conftest.py's LONGEST_FIRST order (--no-loadscope-reorder
# keeps xdist from reordering them). IP2P_TEST_PROCESSES sets how many processes: a test waits on
# its ComfyUI server, a server on its test, so two keep two cores busy. Arguments go to pytest:
# -m "not host and not slow" is the fast tier (no ComfyUI, no training run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash harness/frontend_setup.sh
# A fresh clone writes up to 6 GB of test models and temporary files (docs/development.md): say so
# up front, so that a full disk is recognised as the cause of what fails.
echo "test: $(df -Pk . | awk 'NR == 2 {printf "%.1f", $4 * 1024 / 1e9}') GB free here; a first run needs about 6 GB"
processes="${IP2P_TEST_PROCESSES:-2}"
# The cores shared out: each test process and its ComfyUI get their part, so that torch's thread
# pools do not spin against each other (two hosts with a thread per core ran slower than one).
threads=$(( $(nproc) / processes ))
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( threads > 0 ? threads : 1 ))}"
exec .venv/bin/python -m pytest tests -n "$processes" --dist loadfile --no-loadscope-reorder "$@"
