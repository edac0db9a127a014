#!/usr/bin/env bash
# The whole test suite: unit, property, conformance (Postgres and SQLite) and
# end-to-end tests. Starts PostgreSQL if it is down; installs Prometheus if
# it is missing.
#
# The end-to-end tests (services/cli/tests) generate real load and measure
# latency, so they run after everything else, one at a time: on a 2-core
# machine a parallel compile or test would show up as queueing in their
# latency checks.
set -euo pipefail
cd "$(dirname "$0")/.."

url=$(scripts/ensure-postgres.sh)
export DATABASE_URL="${DATABASE_URL:-$url}"
echo "test: DATABASE_URL=$DATABASE_URL" >&2
# The target CPU sampling test (services/cli/tests/e2e_target_cpu.rs) starts a
# real Prometheus server: install Debian's package if it is missing.
echo "test: prometheus=$(scripts/ensure-prometheus.sh)" >&2

e2e='package(cicada-cli) & kind(test)'
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast -E "not ($e2e)" "$@"
  cargo nextest run --workspace --all-targets --no-fail-fast -E "$e2e" --test-threads 1 "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast "$@" -- --test-threads 1
fi

# The web UI in a real browser (headless Debian chromium): after the Rust
# end-to-end tests, for the same reason (it generates load).
scripts/test-web.sh
