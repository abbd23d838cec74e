#!/usr/bin/env bash
# Sets up .venv if needed, then edits examples/landscape.png with workflows/basic_edit.api.json
# in a headless ComfyUI. Extra arguments go to scripts/edit_image.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/edit_image.py "$@"
