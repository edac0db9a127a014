#!/usr/bin/env bash
# Memory per idle virtual user (BENCHMARKS.md, "Memory per user"): one
# worker runs N users against the sample target, each making a request and
# then waiting 20 s (bench/scenarios/idle-users.yaml), so almost all of them
# are idle and connected at any moment. For each N the worker is a fresh
# process; its RSS is read once all N users run and have sent their first
# request, then again after MEMORY_HOLD seconds, and compared with its RSS
# before the run.
#
# Loopback only; every step has a time limit. Not a test.
#
# Environment (all optional):
#   MEMORY_USERS="1000 5000 18000"   user counts (18,000 fits this machine's
#                                    open-file limit of 20,000 per process)
#   MEMORY_HOLD=60                   seconds between the two RSS samples
#   MEMORY_SPAWN_RATE=2000           users started per second
#   CICADA_BUILT=1                   use the release binaries as they are
#   MEMORY_RESULTS=bench/results     where the result folder goes
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"

read -r -a USER_COUNTS <<<"${MEMORY_USERS:-1000 5000 18000}"
HOLD=${MEMORY_HOLD:-60}
SPAWN_RATE=${MEMORY_SPAWN_RATE:-2000}
RUN_DIR=${MEMORY_RESULTS:-$REPO/bench/results}/memory-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN_DIR"
trap stop_started EXIT

need=$((${USER_COUNTS[-1]} + 500))
if (($(ulimit -n) < need)); then
    ulimit -n "$need" 2>/dev/null || die "needs $need open files per process; ulimit -n is $(ulimit -n)"
fi

if [[ ${CICADA_BUILT:-0} != 1 ]]; then
    log "building release binaries"
    (cd "$REPO" && cargo build --release -q --locked -p cicada-cli -p cicada-worker \
        -p cicada-controller -p cicada-collector -p cicada-sample-target)
fi
BIN=$REPO/target/release

pick_service_ports

start_logged target "$BIN/cicada-sample-target" --listen "127.0.0.1:$TARGET_PORT" --threads 1
target=$STARTED
wait_tcp "$TARGET_PORT" || die "the sample target did not listen"
start_control_plane "$RUN_DIR/cicada.db"

# Users the worker reports running (the `users` column of `cicada workers`).
worker_users() {
    "$BIN/cicada" workers --controller "$CONTROLLER" 2>/dev/null |
        awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "users") c = i; next } c { print $c; exit }'
}

echo "users,rss_before_kb,rss_running_kb,rss_after_hold_kb,kb_per_user,target_served" >"$RUN_DIR/memory.csv"
for users in "${USER_COUNTS[@]}"; do
    start_logged "worker-$users" "$BIN/cicada-worker" --controller "$CONTROLLER" --worker-id "memory-$users"
    worker=$STARTED
    for _ in $(seq 1 100); do
        [[ -n $(worker_users) ]] && break
        sleep 0.2
    done
    [[ -n $(worker_users) ]] || die "the worker did not register"
    sleep 1
    before=$(rss_kb "$worker")
    curl -sf -X POST --max-time 5 "http://127.0.0.1:$TARGET_PORT/stats/reset" >/dev/null
    ramp=$((users / SPAWN_RATE + 1))
    run_time=$((ramp + 25 + HOLD + 5))
    log "$users users: ramp ${ramp}s, then ${HOLD}s idle; worker RSS before: $((before / 1024)) MiB"
    timeout $((run_time + 120)) "$BIN/cicada" start "$BENCH_DIR/scenarios/idle-users.yaml" \
        --controller "$CONTROLLER" -H "http://127.0.0.1:$TARGET_PORT" -u "$users" \
        -r "$SPAWN_RATE" -t "${run_time}s" >"$RUN_DIR/run-$users.txt" 2>"$RUN_DIR/run-$users.log" &
    run=$!
    # All users started and each sent its first request (they wait 20 s
    # after it, so the first round ends within the ramp plus a moment).
    for _ in $(seq 1 $((ramp * 10 + 300))); do
        [[ $(worker_users) == "$users" ]] && break
        sleep 0.1
    done
    [[ $(worker_users) == "$users" ]] || die "$users users did not start; see $RUN_DIR/run-$users.log"
    sleep 5
    running=$(rss_kb "$worker")
    sleep "$HOLD"
    after=$(rss_kb "$worker")
    served=$(curl -sf --max-time 5 "http://127.0.0.1:$TARGET_PORT/stats" | jq '.total')
    wait "$run" || log "the $users-user run ended with an error; see $RUN_DIR/run-$users.log"
    per_user=$(awk -v a="$after" -v b="$before" -v n="$users" 'BEGIN { printf "%.2f", (a - b) / n }')
    log "$users users: RSS $((running / 1024)) MiB running, $((after / 1024)) MiB after ${HOLD}s: $per_user KiB per user ($served requests served)"
    echo "$users,$before,$running,$after,$per_user,$served" >>"$RUN_DIR/memory.csv"
    stop_pid "$worker"
done
stop_pid "$target"

python3 - "$RUN_DIR/memory.csv" <<'EOF' | tee "$RUN_DIR/table.md"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| users | worker RSS before | running | after hold | KiB per user | requests served |")
print("|---:|---:|---:|---:|---:|---:|")
for r in rows:
    mib = lambda k: f"{int(r[k]) / 1024:.1f} MiB"
    print(f"| {int(r['users']):,} | {mib('rss_before_kb')} | {mib('rss_running_kb')} | {mib('rss_after_hold_kb')} | {float(r['kb_per_user']):.2f} | {int(r['target_served']):,} |")
EOF
log "results in $RUN_DIR"
