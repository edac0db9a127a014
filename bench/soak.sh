#!/usr/bin/env bash
# Soak benchmark (BENCHMARKS.md, "Soak"): one hour of steady open-model load
# through separate processes (sample target, collector on Postgres,
# controller, two workers), reporting each service's RSS at 5, 30 and 60
# minutes and checking that the stored run equals what the target served.
# Not a test: it takes an hour. Loopback only; every step has a time limit.
#
# Environment (all optional):
#   SOAK_SECONDS=3600      length of the run
#   SOAK_RATE=1000         iterations per second (open model), all workers
#   SOAK_PROFILE=release   cargo profile of the binaries (release|debug)
#   SOAK_WORKERS=2         worker processes
#   DATABASE_URL           Postgres server (default: the local one); the run
#                          goes to a fresh database cicada_soak_<pid>
#   SOAK_RESULTS=bench/results   where the result folder goes
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"

SECONDS_TOTAL=${SOAK_SECONDS:-3600}
RATE=${SOAK_RATE:-1000}
PROFILE=${SOAK_PROFILE:-release}
WORKERS=${SOAK_WORKERS:-2}
RUN_DIR=${SOAK_RESULTS:-$REPO/bench/results}/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN_DIR"
trap stop_started EXIT

server=$("$REPO/scripts/ensure-postgres.sh")
server=${DATABASE_URL:-$server}
db=cicada_soak_$$
psql "$server" -qc "CREATE DATABASE $db" >/dev/null
DB_URL=${server%/*}/$db
log "database $DB_URL"

if [[ $PROFILE == release ]]; then
    (cd "$REPO" && cargo build --release -q --locked --workspace --bins)
    BIN=$REPO/target/release
else
    (cd "$REPO" && cargo build -q --locked --workspace --bins)
    BIN=$REPO/target/debug
fi

pick_service_ports

start() {
    start_logged "$@"
    PIDS[$1]=$STARTED
}
declare -A PIDS
start target "$BIN/cicada-sample-target" --listen "127.0.0.1:$TARGET_PORT"
wait_tcp "$TARGET_PORT" || die "the sample target did not listen"
start_control_plane "$DB_URL"
PIDS[collector]=$COLLECTOR_PID
PIDS[controller]=$CONTROLLER_PID
for i in $(seq 1 "$WORKERS"); do
    start "worker-$i" "$BIN/cicada-worker" --controller "$CONTROLLER" --worker-id "soak-$i"
done

services=(target collector controller)
for i in $(seq 1 "$WORKERS"); do services+=("worker-$i"); done

log "soak: $RATE iterations/s for $SECONDS_TOTAL s; RSS every minute in $RUN_DIR/rss.csv"
echo "elapsed_s,$(IFS=,; echo "${services[*]}")" >"$RUN_DIR/rss.csv"
timeout $((SECONDS_TOTAL + 300)) "$BIN/cicada" start "$REPO/examples/weighted-reads.yaml" \
    --controller "$CONTROLLER" --host "http://127.0.0.1:$TARGET_PORT" \
    --expect-workers "$WORKERS" --rate "$RATE" -t "${SECONDS_TOTAL}s" \
    --summary-json "$RUN_DIR/summary.json" >"$RUN_DIR/report.txt" 2>"$RUN_DIR/progress.log" &
run=$!
started=$(date +%s)
while kill -0 "$run" 2>/dev/null; do
    elapsed=$(($(date +%s) - started))
    row=$elapsed
    for s in "${services[@]}"; do row+=",$(rss_kb "${PIDS[$s]}")"; done
    echo "$row" >>"$RUN_DIR/rss.csv"
    log "$elapsed s: RSS (KiB) $row"
    for _ in $(seq 1 60); do kill -0 "$run" 2>/dev/null && sleep 1; done
done
wait "$run" || die "cicada start failed: $(tail -5 "$RUN_DIR/progress.log")"
row=$(($(date +%s) - started))
for s in "${services[@]}"; do row+=",$(rss_kb "${PIDS[$s]}")"; done
echo "$row" >>"$RUN_DIR/rss.csv"

served=$(curl -sf "http://127.0.0.1:$TARGET_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["requests"])' "$RUN_DIR/summary.json")
unrecorded=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["unrecorded_max"])' "$RUN_DIR/summary.json")

# The RSS rows nearest to 5, 30 and 60 minutes (scaled to shorter runs).
python3 - "$RUN_DIR/rss.csv" "$SECONDS_TOTAL" "$served" "$stored" "$unrecorded" <<'EOF' | tee "$RUN_DIR/table.md"
import csv, sys
path, total, served, stored, unrecorded = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
rows = list(csv.DictReader(open(path)))
marks = [m for m in (300, 1800, 3600) if m <= total] or [total]
def near(t):
    return min(rows, key=lambda r: abs(int(r["elapsed_s"]) - t))
services = [k for k in rows[0] if k != "elapsed_s"]
print("| service | " + " | ".join(f"RSS at {m // 60} min" for m in marks) + " |")
print("|---|" + "---|" * len(marks))
for s in services:
    print(f"| {s} | " + " | ".join(f"{int(near(m)[s]) / 1024:.1f} MiB" for m in marks) + " |")
print()
print(f"served {served}, stored {stored}, unrecorded_max {unrecorded}: " + ("stored == served" if served == stored else "STORED != SERVED"))
EOF
stop_started
psql "$server" -qc "DROP DATABASE IF EXISTS $db" >/dev/null || true
[[ $served == "$stored" ]] || die "stored $stored != served $served"
log "soak done: $RUN_DIR"
