#!/usr/bin/env bash
# Collector ingest benchmark: fleets of simulated workers (default 250, 500,
# 1000 and 2000), each on its own gRPC connection, pushing real deltas (10
# endpoints, an HdrHistogram each) into the real cicada-collector on a fresh
# Postgres database per fleet. Reports deltas committed per second and per
# collector CPU-second, Postgres' CPU, the commit lag (cut to acknowledgement)
# p50/p99/max, and the largest fleet one collector keeps within 2 s of lag.
# See BENCHMARKS.md ("Collector ingest").
#
# The collector is pinned to BENCH_SERVICES_CORE, the simulated workers (this
# benchmark's own process) to BENCH_SIM_CORE; Postgres runs where the system
# puts it. Everything stays on 127.0.0.1 and every wait is bounded.
#
# Environment (all optional):
#   BENCH_FLEETS=250,500,1000,2000   fleet sizes, in order
#   BENCH_INTERVAL=1s                each worker's delta cadence (the workers'
#                                    default --delta-interval is 200ms)
#   BENCH_ENDPOINTS=10               endpoints per delta
#   BENCH_COLLECTORS=1               collectors sharing each run (one database,
#                                    workers spread over them round robin)
#   BENCH_DURATION=20s               measured push time per fleet
#   BENCH_SERVICES_CORE=1 BENCH_SIM_CORE=0   CPU pinning
#   BENCH_PRIORITY=nice|rt|normal    scheduling (see lib/common.sh)
#   BENCH_RESULTS=bench/results      where result folders go
#   DATABASE_URL                     the Postgres server (default: the local one)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
SERVICES_CORE=${BENCH_SERVICES_CORE:-1}
SIM_CORE=${BENCH_SIM_CORE:-0}
FLEETS=${BENCH_FLEETS:-250,500,1000,2000}
COLLECTORS=${BENCH_COLLECTORS:-1}

# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"

[[ $COLLECTORS =~ ^[1-9][0-9]*$ ]] || die "BENCH_COLLECTORS must be a whole number of at least 1, got '$COLLECTORS'"
[[ $FLEETS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "BENCH_FLEETS must be a comma-separated list of whole numbers"
(($(nproc) > SERVICES_CORE && $(nproc) > SIM_CORE)) ||
    die "needs cores $SIM_CORE and $SERVICES_CORE; this machine has $(nproc)"
command -v taskset >/dev/null || apt_install util-linux
DATABASE_URL=${DATABASE_URL:-$("$REPO/scripts/ensure-postgres.sh")}
export DATABASE_URL

largest=$(tr ',' '\n' <<<"$FLEETS" | sort -n | tail -n 1)
need=$((largest + 256))
if (($(ulimit -n) < need)); then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= need)) || die "open files limit $(ulimit -n) < $need; raise the hard limit (ulimit -Hn)"
fi

log "building cicada-collector and the benchmark (release)"
(cd "$REPO" && cargo build --release -q --locked -p cicada-collector -p cicada-bench-collector-ingest) ||
    die "failed to build"

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    log "warning: load average is $load1: other work shares these cores and will change the numbers"
fi

OUT=${BENCH_RESULTS:-$BENCH_DIR/results}/$(date -u +%Y%m%dT%H%M%SZ)-collector-ingest
cd "$REPO"
"${PRIO[@]}" taskset -c "$SIM_CORE" timeout --kill-after=30 1800 \
    "$REPO/target/release/cicada-bench-collector-ingest" \
    --fleets "$FLEETS" \
    --interval "${BENCH_INTERVAL:-1s}" \
    --endpoints "${BENCH_ENDPOINTS:-10}" \
    --collectors "$COLLECTORS" \
    --duration "${BENCH_DURATION:-20s}" \
    --services-cpus "$SERVICES_CORE" \
    --bin-dir "$REPO/target/release" \
    --out "$OUT"
