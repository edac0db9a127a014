#!/usr/bin/env bash
# History query benchmark: seeds a database with many stored runs (copies of
# one real run's per-second rows, so histograms are real) and times `cicada
# compare` and `cicada runs list` against it, end to end (the CLI process,
# connecting, the queries, the output). The same on Postgres and on SQLite
# (the embedded default). See BENCHMARKS.md ("History queries").
#
#   bash bench/history/run.sh                       # both stores
#   BENCH_STORE=sqlite BENCH_RUNS=100 bash bench/history/run.sh
#
# Environment: BENCH_STORE (both | postgres | sqlite), BENCH_RUNS (1000),
# BENCH_SECONDS (600 per run), BENCH_LONG_SECONDS (3600: two runs this long
# are compared), BENCH_DB (cicada_history_bench: the Postgres database,
# dropped and created again, on DATABASE_URL's server
# postgres@127.0.0.1:5432; the SQLite file lives in a temp dir).
# Only loopback; every step is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."

stores=${BENCH_STORE:-both}
runs=${BENCH_RUNS:-1000}
seconds=${BENCH_SECONDS:-600}
long=${BENCH_LONG_SECONDS:-3600}
db=${BENCH_DB:-cicada_history_bench}
server=postgres://postgres@127.0.0.1:5432
case $stores in
  both) stores="postgres sqlite" ;;
  postgres | sqlite) ;;
  *) echo "BENCH_STORE=$stores: use both, postgres or sqlite" >&2; exit 2 ;;
esac
log() { printf '[history-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

case " $stores " in *" postgres "*) scripts/ensure-postgres.sh >/dev/null ;; esac
case " $stores " in
  *" sqlite "*) command -v sqlite3 >/dev/null || apt-get install -y -q sqlite3 >/dev/null ;;
esac
cargo build --release --locked -q -p cicada-cli -p cicada-sample-target
bin=target/release

work=$(mktemp -d)
port=38090
"$bin/cicada-sample-target" --listen 127.0.0.1:$port --latency 1ms >"$work/target.log" 2>&1 &
target=$!
trap 'kill $target 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done

{
  echo "name: ten-endpoints"
  echo "users:"
  echo "  - wait: {constant: 5ms}"
  echo "    tasks:"
  for i in $(seq 1 10); do echo "      - request: {method: GET, path: /Test/V1, name: /endpoint/$i}"; done
} >"$work/ten.yaml"

a=seed-$(printf '%05d' $((runs + 1)))
b=seed-$(printf '%05d' $((runs + 2)))

# Postgres: runs, endpoints, per-second rows and summaries copied from the
# template run with INSERT ... SELECT and generate_series.
seed_postgres() {
  local url=$1 template=$2
  psql -q -v ON_ERROR_STOP=1 "$url" <<SQL
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
}

# SQLite: the same rows (recursive CTEs instead of generate_series, bare
# columns of max() instead of DISTINCT ON), inserted in primary key order.
seed_sqlite() {
  local file=$1 template=$2
  sqlite3 -bail "$file" <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
CREATE TEMP TABLE tpl AS
  SELECT endpoint, max(requests) AS requests, failures, cancelled, bytes, histogram
  FROM run_seconds WHERE run_id = '$template' GROUP BY endpoint;
CREATE TEMP TABLE seeded AS
  WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < $runs + 2)
  SELECT printf('seed-%05d', g) AS id, g, CASE WHEN g > $runs THEN $long ELSE $seconds END AS seconds FROM n;
CREATE TEMP TABLE secs AS
  WITH RECURSIVE n(sec) AS (SELECT 0 UNION ALL SELECT sec + 1 FROM n WHERE sec < max($long, $seconds) - 1)
  SELECT sec FROM n;
BEGIN;
INSERT INTO runs (id, scenario_name, scenario_yaml, host, config_json, labels_json, status, started_at_ms, ended_at_ms, error)
  SELECT s.id, r.scenario_name, r.scenario_yaml, r.host, r.config_json, '{}', 'finished',
         1700000000000 + s.g * 10000000, 1700000000000 + s.g * 10000000 + s.seconds * 1000, NULL
  FROM seeded s, runs r WHERE r.id = '$template';
INSERT INTO run_endpoints (run_id, idx, method, name)
  SELECT s.id, e.idx, e.method, e.name FROM seeded s, run_endpoints e WHERE e.run_id = '$template';
INSERT INTO run_seconds (run_id, second, endpoint, requests, failures, cancelled, bytes, histogram)
  SELECT s.id, 1700000000 + s.g * 10000 + x.sec, t.endpoint, t.requests, t.failures, t.cancelled, t.bytes, t.histogram
  FROM seeded s JOIN secs x ON x.sec < s.seconds CROSS JOIN tpl t
  ORDER BY s.id, x.sec, t.endpoint;
INSERT INTO run_summaries (run_id, endpoint, requests, failures, cancelled, bytes, histogram)
  SELECT s.id, m.endpoint, m.requests, m.failures, m.cancelled, m.bytes, m.histogram
  FROM seeded s, run_summaries m WHERE m.run_id = '$template';
COMMIT;
ANALYZE;
SQL
}

# The short runs' per-minute rollups: copies of the first minutes of run A's
# (built by `cicada runs rollup` from the same template seconds, so equal to
# what rolling each of them up would write), instead of decoding 6M rows.
copy_minutes() {
  cat <<SQL
INSERT INTO run_minutes (run_id, minute_start, endpoint, requests, failures, cancelled, bytes, histogram, uncorrected_histogram)
  SELECT r.id, r.started_at_ms / 1000 + (m.minute_start - $((1700000000 + (runs + 1) * 10000))), m.endpoint,
         m.requests, m.failures, m.cancelled, m.bytes, m.histogram, m.uncorrected_histogram
  FROM runs r JOIN run_minutes m ON m.run_id = '$a'
   AND m.minute_start - $((1700000000 + (runs + 1) * 10000)) < (r.ended_at_ms - r.started_at_ms) / 1000
  WHERE r.id LIKE 'seed-%' AND r.id NOT IN ('$a', '$b')
  ORDER BY r.id, m.minute_start, m.endpoint;
UPDATE runs SET minutes_origin = started_at_ms / 1000 WHERE id LIKE 'seed-%' AND id NOT IN ('$a', '$b');
SQL
}

time_ms() {  # median of 5 runs of "$@", in ms
  local samples=() t0 t1
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
    samples+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${samples[@]}" | sort -n | sed -n 3p
}
once_ms() {  # one run of "$@", in ms
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}

bench_store() {
  local store=$1 url query size start
  case $store in
    postgres)
      url=$server/$db
      psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
      query() { psql -q -v ON_ERROR_STOP=1 -At "$url" "$@"; }
      size() { psql -At "$url" -c "SELECT pg_size_pretty(pg_database_size('$db'))"; }
      ;;
    sqlite)
      url=sqlite:$work/history.db
      query() { if [ $# -gt 0 ]; then sqlite3 -bail "$work/history.db" "$2"; else sqlite3 -bail "$work/history.db"; fi; }
      size() { du -h "$work/history.db" | cut -f1; }
      ;;
  esac

  log "$store: recording the template run"
  "$bin/cicada" run "$work/ten.yaml" --host "http://127.0.0.1:$port" -u 20 -r 100 -t 3s \
    --database-url "$url" --summary-json "$work/template.json" >/dev/null 2>"$work/run.log"
  local template
  template=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$work/template.json")

  log "$store: seeding $runs runs x $seconds s x 10 endpoints and 2 runs x $long s"
  start=$(date +%s)
  case $store in
    postgres) seed_postgres "$url" "$template" ;;
    sqlite) seed_sqlite "$work/history.db" "$template" >/dev/null ;;
  esac
  local seeded_s=$(( $(date +%s) - start ))
  log "$store: seeded in $seeded_s s; $(query -c 'SELECT count(*) FROM run_seconds') per-second rows, $(size)"

  local cli=("$bin/cicada")
  local db_args=(--database-url "$url" --format json)
  local noop full window_s aligned unaligned inner page rollup_ms
  noop=$(time_ms "${cli[@]}" --version)
  # Before the rollup (as for runs that ended before it existed): seconds only.
  window_s=$(time_ms "${cli[@]}" compare "$a" "$b" "${db_args[@]}" --from 60s --to ${long}s)
  log "$store: rolling up the two $long s runs"
  rollup_ms=$(once_ms "${cli[@]}" runs rollup "$a" "$b" --database-url "$url")
  copy_minutes | query
  log "$store: $(query -c 'SELECT count(*) FROM run_minutes') per-minute rows, $(size)"
  full=$(time_ms "${cli[@]}" compare "$a" "$b" "${db_args[@]}")
  aligned=$(time_ms "${cli[@]}" compare "$a" "$b" "${db_args[@]}" --from 60s --to ${long}s)
  unaligned=$(time_ms "${cli[@]}" compare "$a" "$b" "${db_args[@]}" --from 61s --to $((long - 1))s)
  inner=$(time_ms "${cli[@]}" compare "$a" "$b" "${db_args[@]}" --from 90s --to 150s)
  page=$(time_ms "${cli[@]}" runs list "${db_args[@]}" --limit 20)
  {
    printf '\nhistory queries on %s: %s runs x %s s x 10 endpoints + 2 x %s s (seeded in %s s; median of 5, whole CLI process)\n' \
      "$store" "$runs" "$seconds" "$long" "$seeded_s"
    printf '  cicada --version (process start)                         %6s ms\n' "$noop"
    printf '  compare, whole runs                                      %6s ms\n' "$full"
    printf '  compare --from 60s --to %ss, seconds only (no rollup)  %6s ms\n' "$long" "$window_s"
    printf '  runs rollup of the two runs (once)                       %6s ms\n' "$rollup_ms"
    printf '  compare --from 60s --to %ss (whole minutes)            %6s ms\n' "$long" "$aligned"
    printf '  compare --from 61s --to %ss (2 x 59 s edges)           %6s ms\n' "$((long - 1))" "$unaligned"
    printf '  compare --from 90s --to 150s (no whole minute)           %6s ms\n' "$inner"
    printf '  runs list, a page of 20                                  %6s ms\n' "$page"
  } | tee -a "$work/results.txt"
  # The Postgres database stays for a look with psql (the next run drops it).
  [ "$store" = postgres ] || rm -f "$work"/history.db*
}

for store in $stores; do
  bench_store "$store"
done
echo
cat "$work/results.txt"
