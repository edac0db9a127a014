#!/usr/bin/env bash
# The web UI's browser end-to-end test (services/controller/web/e2e): builds
# the `cicada` and `cicada-sample-target` binaries, makes sure Debian's
# chromium and the test's npm dependencies are installed
# (scripts/ensure-chromium.sh), then runs the test, which starts a real
# `cicada ui` cluster and the sample target on loopback and drives the UI in
# headless chromium. Screenshots: target/web-e2e/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "test-web: chromium=$(scripts/ensure-chromium.sh)" >&2
cargo build --locked -p cicada-cli -p cicada-sample-target
node services/controller/web/e2e/ui.test.mjs
