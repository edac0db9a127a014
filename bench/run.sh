#!/usr/bin/env bash
# Load generator benchmark: how many requests per second, and per CPU-second
# of the generator, each tool gets out of one core against a fast target.
#
# The target (nginx with a 3-byte body, or cicada's sample target) runs pinned
# to core 1, each generator pinned to core 0 with 64 keep-alive connections
# for BENCH_SECONDS. Everything stays on 127.0.0.1 and every step has a time
# limit. See BENCHMARKS.md.
#
# Environment (all optional):
#   BENCH_TARGET=nginx|sample      what to load (default nginx)
#   BENCH_SECONDS=10               length of each generator's run
#   BENCH_CONNECTIONS=64           connections (cicada: users)
#   BENCH_GENERATORS="wrk oha cicada"  which generators, in order; cicada_run
#                                  adds `cicada run` all-in-one on the generator core
#   BENCH_HTTP=1|2                 2: HTTP/2 (h2c with prior knowledge): nginx
#                                  listens with http2, generators default to
#                                  "h2load oha cicada", cicada runs get-root-h2.yaml
#   BENCH_TLS=1                    HTTPS: nginx with a self-signed certificate made
#                                  for the run (no session cache, no tickets: every
#                                  new connection is a full handshake); generators
#                                  default to "wrk cicada"; cicada's TLS handshake
#                                  times are reported
#   BENCH_CONNECTION=keep_alive|close  close: a new connection per request (wrk
#                                  sends Connection: close, cicada runs with
#                                  connection: close), to measure connection and
#                                  handshake cost
#   BENCH_LOCUST=1                 also run Locust (FastHttpUser), installed in a venv
#   BENCH_PORT=28080               target port on 127.0.0.1 (the defaults stay
#                                  below the ephemeral range, 32768-60999, that
#                                  client sockets of earlier runs may still hold)
#   BENCH_TARGET_CORE=1 BENCH_GEN_CORE=0   CPU pinning
#   BENCH_WRK_THREADS=1            wrk threads
#   BENCH_PRIORITY=nice|rt|normal  scheduling of target and generators (see lib/common.sh)
#   BENCH_RESULTS=bench/results    where result folders go
#   BENCH_COLLECTOR_ARGS / BENCH_CONTROLLER_ARGS / BENCH_WORKER_ARGS
#                                  replace the cicada services' default flags
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

BENCH_TARGET=${BENCH_TARGET:-nginx}
BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
BENCH_WRK_THREADS=${BENCH_WRK_THREADS:-1}
TARGET_PORT=${BENCH_PORT:-28080}
TARGET_CORE=${BENCH_TARGET_CORE:-1}
GEN_CORE=${BENCH_GEN_CORE:-0}
BENCH_HTTP=${BENCH_HTTP:-1}
[[ $BENCH_HTTP == 1 || $BENCH_HTTP == 2 ]] || { echo "BENCH_HTTP must be 1 or 2" >&2; exit 2; }
BENCH_TLS=${BENCH_TLS:-0}
BENCH_CONNECTION=${BENCH_CONNECTION:-keep_alive}
[[ $BENCH_TLS == 0 || $BENCH_TLS == 1 ]] || { echo "BENCH_TLS must be 0 or 1" >&2; exit 2; }
[[ $BENCH_CONNECTION == keep_alive || $BENCH_CONNECTION == close ]] ||
    { echo "BENCH_CONNECTION must be keep_alive or close" >&2; exit 2; }
if [[ $BENCH_TLS == 1 && ($BENCH_HTTP == 2 || $BENCH_TARGET != nginx) ]]; then
    echo "BENCH_TLS=1 runs HTTP/1.1 against nginx only" >&2
    exit 2
fi
default_generators="wrk oha cicada"
CICADA_SCENARIO=get-root.yaml
if [[ $BENCH_HTTP == 2 ]]; then
    default_generators="h2load oha cicada"
    CICADA_SCENARIO=get-root-h2.yaml
fi
if [[ $BENCH_TLS == 1 ]]; then
    default_generators="wrk cicada"
    CICADA_SCENARIO=get-root-tls.yaml
fi
if [[ $BENCH_CONNECTION == close ]]; then
    CICADA_SCENARIO=${CICADA_SCENARIO%.yaml}-close.yaml
fi
[[ ${BENCH_LOCUST:-0} == 1 ]] && default_generators+=" locust"
read -r -a GENERATORS <<<"${BENCH_GENERATORS:-$default_generators}"

# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/targets.sh
source "$BENCH_DIR/lib/targets.sh"
# shellcheck source=lib/generators.sh
source "$BENCH_DIR/lib/generators.sh"
# shellcheck source=lib/cicada.sh
source "$BENCH_DIR/lib/cicada.sh"
# shellcheck source=lib/report.sh
source "$BENCH_DIR/lib/report.sh"

[[ $BENCH_SECONDS =~ ^[0-9]+$ && $BENCH_SECONDS -gt 0 ]] || die "BENCH_SECONDS must be a whole number of seconds"
(($(nproc) > TARGET_CORE && $(nproc) > GEN_CORE)) ||
    die "needs cores $GEN_CORE and $TARGET_CORE; this machine has $(nproc)"

WORK_DIR=$(mktemp -d -t cicada-bench.XXXXXX)
cleanup() {
    stop_started
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_suffix=''
[[ $BENCH_HTTP == 2 ]] && run_suffix=-h2
[[ $BENCH_TLS == 1 ]] && run_suffix+=-tls
[[ $BENCH_CONNECTION == close ]] && run_suffix+=-close
RUN_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}/$(date -u +%Y%m%dT%H%M%SZ)-$BENCH_TARGET$run_suffix
mkdir -p "$RUN_DIR"

ensure_base_tools
# Build and install before anything is measured, so no compile or install
# shares the cores with a run.
if [[ " ${GENERATORS[*]} " == *" cicada "* || " ${GENERATORS[*]} " == *" cicada_run "* ]]; then
    build_cicada || die "failed to build cicada"
fi
if [[ " ${GENERATORS[*]} " == *" locust "* ]]; then
    ensure_locust || die "failed to install locust"
fi
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
    log "warning: load average is $load1: other work shares these cores and will lower the numbers"
fi
start_target

for GEN in "${GENERATORS[@]}"; do
    declare -F "run_$GEN" >/dev/null || die "unknown generator '$GEN'"
    G_REQUESTS='' G_ELAPSED='' G_USER_S='' G_SYS_S='' G_RSS_KB='' G_ERRORS=0 G_VERSION=$GEN G_OVERHEAD_CPU_S=null G_CONNECTIONS=null
    target_reset || die "failed to reset the target's counters"
    target_cpu_before=$(cpu_seconds "$TARGET_PID") || die "the target (pid $TARGET_PID) is gone"
    busy_before=$(machine_busy_seconds)
    log "running $GEN: $BENCH_CONNECTIONS connections, ${BENCH_SECONDS}s, core $GEN_CORE"
    if "run_$GEN"; then
        target_cpu=$(sub "$(cpu_seconds "$TARGET_PID")" "$target_cpu_before")
        busy=$(sub "$(machine_busy_seconds)" "$busy_before")
        record_result ok "$target_cpu" "$(target_served)" "$busy"
    else
        log "$GEN did not run; its row is marked failed (logs in $RUN_DIR)"
        record_result failed null null null
    fi
    # Let the previous generator's sockets close before the next one starts.
    sleep 2
done

write_results
print_table | tee "$RUN_DIR/table.txt"
log "results in $RUN_DIR"
