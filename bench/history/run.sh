#!/usr/bin/env bash
# History query benchmark: seeds a Postgres database with many stored runs
# (copies of one real run's per-second rows, so histograms are real) and
# times `cicada compare` and `cicada runs list` against it, end to end (the
# CLI process, connecting, the queries, the output).
#
#   BENCH_RUNS=1000 BENCH_SECONDS=600 bash bench/history/run.sh
#
# Environment: BENCH_RUNS (1000), BENCH_SECONDS (600 per run), BENCH_LONG_SECONDS
# (3600: two runs this long are compared), BENCH_DB (cicada_history_bench,
# dropped and created again), DATABASE_URL's server (postgres@127.0.0.1:5432).
# Only loopback; every step is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${BENCH_RUNS:-1000}
seconds=${BENCH_SECONDS:-600}
long=${BENCH_LONG_SECONDS:-3600}
db=${BENCH_DB:-cicada_history_bench}
server=postgres://postgres@127.0.0.1:5432
url=$server/$db
psql_db() { psql -q -v ON_ERROR_STOP=1 "$url" "$@"; }
log() { printf '[history-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

scripts/ensure-postgres.sh >/dev/null
cargo build --release --locked -q -p cicada-cli -p cicada-sample-target
bin=target/release

psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
work=$(mktemp -d)
port=38090
"$bin/cicada-sample-target" --listen 127.0.0.1:$port --latency 1ms >"$work/target.log" 2>&1 &
target=$!
trap 'kill $target 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done

# One real run with 10 endpoints: its first full second is the template row.
{
  echo "name: ten-endpoints"
  echo "users:"
  echo "  - wait: {constant: 5ms}"
  echo "    tasks:"
  for i in $(seq 1 10); do echo "      - request: {method: GET, path: /Test/V1, name: /endpoint/$i}"; done
} >"$work/ten.yaml"
log "recording the template run"
"$bin/cicada" run "$work/ten.yaml" --host "http://127.0.0.1:$port" -u 20 -r 100 -t 3s \
  --database-url "$url" --summary-json "$work/template.json" >/dev/null 2>"$work/run.log"
template=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$work/template.json")

log "seeding $runs runs x $seconds s x 10 endpoints and 2 runs x $long s"
start=$(date +%s)
psql_db <<SQL
CREATE TEMP TABLE tpl AS
  SELECT DISTINCT ON (endpoint) endpoint, requests, failures, cancelled, bytes, histogram
  FROM run_seconds WHERE run_id = '$template' ORDER BY endpoint, requests DESC;
CREATE TEMP TABLE seeded AS
  SELECT 'seed-' || lpad(g::text, 5, '0') AS id, g,
         CASE WHEN g > $runs THEN $long ELSE $seconds END AS seconds
  FROM generate_series(1, $runs + 2) AS g;
INSERT INTO runs (id, scenario_name, scenario_yaml, host, config_json, labels_json, status, started_at_ms, ended_at_ms, error)
  SELECT s.id, r.scenario_name, r.scenario_yaml, r.host, r.config_json, '{}', 'finished',
         1700000000000 + s.g::bigint * 10000000, 1700000000000 + s.g::bigint * 10000000 + s.seconds * 1000, NULL
  FROM seeded s, runs r WHERE r.id = '$template';
INSERT INTO run_endpoints (run_id, idx, method, name)
  SELECT s.id, e.idx, e.method, e.name FROM seeded s, run_endpoints e WHERE e.run_id = '$template';
INSERT INTO run_seconds (run_id, second, endpoint, requests, failures, cancelled, bytes, histogram)
  SELECT s.id, 1700000000 + s.g::bigint * 10000 + sec, t.endpoint, t.requests, t.failures, t.cancelled, t.bytes, t.histogram
  FROM seeded s CROSS JOIN tpl t CROSS JOIN LATERAL generate_series(0, s.seconds - 1) AS sec;
INSERT INTO run_summaries (run_id, endpoint, requests, failures, cancelled, bytes, histogram)
  SELECT s.id, m.endpoint, m.requests, m.failures, m.cancelled, m.bytes, m.histogram
  FROM seeded s, run_summaries m WHERE m.run_id = '$template';
ANALYZE;
SQL
log "seeded in $(( $(date +%s) - start )) s; $(psql_db -Atc 'SELECT count(*) FROM run_seconds') per-second rows, $(psql_db -Atc "SELECT pg_size_pretty(pg_database_size('$db'))")"

a=seed-$(printf '%05d' $((runs + 1)))
b=seed-$(printf '%05d' $((runs + 2)))
time_ms() {  # median of 5 runs of "$@", in ms
  local samples=() t0 t1
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
    samples+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${samples[@]}" | sort -n | sed -n 3p
}
noop=$(time_ms "$bin/cicada" --version)
full=$(time_ms "$bin/cicada" compare "$a" "$b" --database-url "$url" --format json)
window=$(time_ms "$bin/cicada" compare "$a" "$b" --database-url "$url" --format json --from 60s --to 3600s)
page=$(time_ms "$bin/cicada" runs list --database-url "$url" --limit 20 --format json)
printf '\nhistory queries on Postgres: %s runs x %s s x 10 endpoints + 2 x %s s (median of 5, whole CLI process)\n' "$runs" "$seconds" "$long"
printf '  cicada --version (process start)           %6s ms\n' "$noop"
printf '  compare two %s s runs (whole runs)        %6s ms\n' "$long" "$full"
printf '  compare two %s s runs, --from 60s --to 3600s %6s ms\n' "$long" "$window"
printf '  runs list, a page of 20                     %6s ms\n' "$page"
