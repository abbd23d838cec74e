#!/usr/bin/env bash
# Installs what tests/test_frontend_workflows.py drives the ComfyUI frontend with, when missing:
# Chromium and Node.js from Debian (as root, with apt), playwright-core from npm into
# .cache/frontend. Without root or apt it says what is missing; the tests then skip (fail with CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "${IP2P_CHROMIUM:-}" ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "frontend setup: installing ${missing[*]} with apt"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
            echo "frontend setup: apt could not install ${missing[*]}: the frontend tests will say so"
            exit 0
        fi
    else
        echo "frontend setup: ${missing[*]} missing and cannot be installed here (needs root and apt): the frontend tests will skip"
        exit 0
    fi
fi
if ! grep -qs '"version": "1.65.1"' .cache/frontend/node_modules/playwright-core/package.json; then
    echo "frontend setup: installing playwright-core into .cache/frontend"
    # the version the tests were written against
    npm install --silent --prefix .cache/frontend playwright-core@1.65.1 >/dev/null \
        || echo "frontend setup: npm could not install playwright-core: the frontend tests will say so"
fi
