#!/usr/bin/env bash
# Creates .venv with requirements-dev.txt once; re-installs only when that file changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
stamp=.venv/.requirements-dev.sha256
want="$(sha256sum requirements-dev.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing requirements-dev.txt into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    echo "$want" > "$stamp"
fi
# The shipped demo model as an ordinary checkpoint (checked against its record; once per version),
# for ComfyUI's own loader and diffusers in the tests and benchmarks.
.venv/bin/python -m tools.demo_checkpoint >/dev/null
