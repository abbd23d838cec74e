#!/usr/bin/env bash
# Sets up .venv if needed, then edits examples/landscape.png with workflows/basic_edit.api.json
# in a headless ComfyUI. Extra arguments go to tools/edit_image.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/python -m tools.edit_image "$@"
