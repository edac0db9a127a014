#!/usr/bin/env bash
# Makes sure the browser end-to-end test (services/controller/web/e2e) can
# run: Debian's `chromium` at /usr/bin/chromium and node/npm (installed from
# Debian's packages when missing, by scripts/apt-install.sh) and the test's
# npm dependencies (`npm ci`: playwright-core only, pinned in
# package-lock.json; it drives that chromium, no browser is downloaded).
# Prints the browser's path.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  scripts/apt-install.sh ensure-chromium "${missing[@]}"
fi

e2e=services/controller/web/e2e
if [ ! -d "$e2e/node_modules/playwright-core" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]; then
  echo "ensure-chromium: npm ci in $e2e" >&2
  (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo /usr/bin/chromium
