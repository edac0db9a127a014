#!/usr/bin/env bash
# Controller scale benchmark: N simulated workers (default 2000), each on its
# own gRPC connection, against the real cicada-controller and cicada-collector
# (SQLite in a temp dir). Reports controller CPU per heartbeat (idle and
# during a run), the time to place a 100,000-user run on every worker, and
# the time to stop it. See BENCHMARKS.md ("Controller scale").
#
# The collector and controller are pinned to BENCH_SERVICES_CORE, the
# simulated workers (this benchmark's own process) to BENCH_SIM_CORE, so the
# controller's numbers are not mixed with the load that simulates its
# workers. Everything stays on 127.0.0.1 and every wait is bounded.
#
# Environment (all optional):
#   BENCH_WORKERS=2000          simulated workers
#   BENCH_USERS=100000          users of the run
#   BENCH_SPAWN_RATE=10000      users per second across all workers
#   BENCH_STEADY=20s            length of the idle and running measurements
#   BENCH_CORES=1               cores each worker registers with (list, cycled: 1,2,4)
#   BENCH_SERVICES_CORE=1 BENCH_SIM_CORE=0   CPU pinning
#   BENCH_PRIORITY=nice|rt|normal           scheduling (see lib/common.sh)
#   BENCH_RESULTS=bench/results where result folders go
#   BENCH_CONTROLLER_SCALE_ARGS extra flags for the program (--help lists them)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
SERVICES_CORE=${BENCH_SERVICES_CORE:-1}
SIM_CORE=${BENCH_SIM_CORE:-0}
WORKERS=${BENCH_WORKERS:-2000}

# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"

[[ $WORKERS =~ ^[0-9]+$ && $WORKERS -gt 0 ]] || die "BENCH_WORKERS must be a positive whole number"
(($(nproc) > SERVICES_CORE && $(nproc) > SIM_CORE)) ||
    die "needs cores $SIM_CORE and $SERVICES_CORE; this machine has $(nproc)"
command -v taskset >/dev/null || apt_install util-linux

# Every worker holds a socket here and one in the controller (a child, so it
# inherits this limit): raise the soft limit to the hard one when it is short.
need=$((WORKERS + 256))
if (($(ulimit -n) < need)); then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= need)) || die "open files limit $(ulimit -n) < $need; raise the hard limit (ulimit -Hn)"
fi
log "open files limit: $(ulimit -n)"

# Build before anything is measured, so no compile shares the cores with a run.
log "building cicada-controller, cicada-collector and the benchmark (release)"
(cd "$REPO" && cargo build --release -q --locked -p cicada-controller -p cicada-collector \
    -p cicada-bench-controller-scale) || die "failed to build"

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    log "warning: load average is $load1: other work shares these cores and will change the numbers"
fi

OUT=${BENCH_RESULTS:-$BENCH_DIR/results}/$(date -u +%Y%m%dT%H%M%SZ)-controller-scale
extra=()
read -r -a extra <<<"${BENCH_CONTROLLER_SCALE_ARGS:-}"
# The program starts and stops the services itself (SIGTERM, then SIGKILL)
# and bounds every wait; `timeout` is the last resort.
cd "$REPO"
"${PRIO[@]}" taskset -c "$SIM_CORE" timeout --kill-after=30 900 \
    "$REPO/target/release/cicada-bench-controller-scale" \
    --workers "$WORKERS" \
    --users "${BENCH_USERS:-100000}" \
    --spawn-rate "${BENCH_SPAWN_RATE:-10000}" \
    --steady "${BENCH_STEADY:-20s}" \
    --cores "${BENCH_CORES:-1}" \
    --services-cpus "$SERVICES_CORE" \
    --bin-dir "$REPO/target/release" \
    --out "$OUT" \
    "${extra[@]}"
