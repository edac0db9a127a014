#!/usr/bin/env bash
# The whole test suite: unit, property, conformance (Postgres and SQLite) and
# end-to-end tests. Starts PostgreSQL if it is down.
set -euo pipefail
cd "$(dirname "$0")/.."

url=$(scripts/ensure-postgres.sh)
export DATABASE_URL="${DATABASE_URL:-$url}"
echo "test: DATABASE_URL=$DATABASE_URL" >&2

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
