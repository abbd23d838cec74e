#!/usr/bin/env bash
# Sets up .venv and the frontend check's tools if needed, and runs the whole test suite (unit,
# host, parity, behaviour, workflow and frontend tests). Arguments go to pytest:
# -m "not host and not slow" is the fast tier (no ComfyUI, no training run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash harness/frontend_setup.sh
# A fresh clone builds 5.9 GB of test models and needs up to 3.7 GB more while it runs (README, Tests):
# say so up front, so that a full disk is recognised as the cause of what fails.
echo "test: $(df -Pk . | awk 'NR == 2 {printf "%.1f", $4 / 1048576}') GB free here; a first run needs about 10 GB"
exec .venv/bin/python -m pytest tests "$@"
