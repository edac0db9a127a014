#!/usr/bin/env bash
# Makes sure the browser end-to-end test (services/controller/web/e2e) can
# run: Debian's `chromium` at /usr/bin/chromium (installed from Debian's
# packages when missing: one `apt-get update`, idempotent, CI runs as root on
# a fresh machine) and the test's npm dependencies (`npm ci`: playwright-core
# only, pinned in package-lock.json; it drives that chromium, no browser is
# downloaded). Prints the browser's path.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-chromium: installing chromium from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "ensure-chromium: installing nodejs and npm from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi

e2e=services/controller/web/e2e
if [ ! -d "$e2e/node_modules/playwright-core" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]; then
  echo "ensure-chromium: npm ci in $e2e" >&2
  (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo /usr/bin/chromium
