#!/usr/bin/env bash
# Web UI rendering benchmark (bench/web-ui/render.mjs): main-thread time per
# live update of a run with 500 endpoints and 1,000 workers, in headless
# Debian chromium. Results: BENCHMARKS.md "Web UI".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-chromium.sh >/dev/null
node bench/web-ui/render.mjs
