# shellcheck shell=bash disable=SC2034  # G_* results are read by report.sh
# cicada as a generator: collector and controller on TARGET_CORE next to the
# target, one worker pinned to GEN_CORE, a run driven by `cicada start`.
# The worker's CPU is read from /proc before and after the run.

CICADA_BIN=$REPO/target/release

build_cicada() {
    [[ ${CICADA_BUILT:-0} == 1 ]] && return 0
    log "building cicada release binaries"
    (cd "$REPO" && cargo build --release -q -p cicada-cli -p cicada-worker \
        -p cicada-controller -p cicada-collector) || return 1
    CICADA_BUILT=1
}

# Starts "$@" on a core in the background; remembers its PID in $STARTED.
start_on_core() {
    local core=$1 logfile=$2
    shift 2
    RUST_LOG=${BENCH_CICADA_LOG:-warn} taskset -c "$core" "${PRIO[@]}" "$@" >"$logfile" 2>&1 &
    STARTED=$!
    remember_pid "$STARTED"
}

# Polls `cicada workers` (a header line, then one line per worker on stdout)
# until it lists a worker (bounded).
wait_worker_registered() {
    local out
    for _ in $(seq 1 100); do
        if out=$("$CICADA_BIN/cicada" workers --controller "$CONTROLLER_URL" 2>/dev/null) &&
            (($(wc -l <<<"$out") >= 2)); then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

run_cicada() {
    build_cicada || return 1
    local collector_port=${BENCH_COLLECTOR_PORT:-27001} controller_port=${BENCH_CONTROLLER_PORT:-27000}
    if ! port_free "$collector_port" || ! port_free "$controller_port"; then
        log "cicada ports $collector_port/$controller_port are in use"
        return 1
    fi
    CONTROLLER_URL=http://127.0.0.1:$controller_port
    local collector_args controller_args worker_args
    read -r -a collector_args <<<"${BENCH_COLLECTOR_ARGS:---listen 127.0.0.1:$collector_port --http-listen 127.0.0.1:0 --database-url $WORK_DIR/cicada.db}"
    read -r -a controller_args <<<"${BENCH_CONTROLLER_ARGS:---listen 127.0.0.1:$controller_port --collector http://127.0.0.1:$collector_port --web-listen off}"
    read -r -a worker_args <<<"${BENCH_WORKER_ARGS:---controller $CONTROLLER_URL}"

    local collector controller worker
    start_on_core "$TARGET_CORE" "$RUN_DIR/cicada-collector.log" "$CICADA_BIN/cicada-collector" "${collector_args[@]}"
    collector=$STARTED
    wait_tcp "$collector_port" || { log "collector did not listen"; return 1; }
    start_on_core "$TARGET_CORE" "$RUN_DIR/cicada-controller.log" "$CICADA_BIN/cicada-controller" "${controller_args[@]}"
    controller=$STARTED
    wait_tcp "$controller_port" || { log "controller did not listen"; return 1; }
    start_on_core "$GEN_CORE" "$RUN_DIR/cicada-worker.log" "$CICADA_BIN/cicada-worker" "${worker_args[@]}"
    worker=$STARTED
    wait_worker_registered || { log "worker did not register"; return 1; }

    local summary=$RUN_DIR/cicada-summary.json overhead_before u0 s0 u1 s1
    overhead_before=$(awk -v a="$(cpu_seconds "$collector")" -v b="$(cpu_seconds "$controller")" 'BEGIN { print a + b }')
    read -r u0 s0 < <(cpu_user_sys "$worker")
    taskset -c "$TARGET_CORE" timeout "$(gen_timeout)" "$CICADA_BIN/cicada" start \
        "$BENCH_DIR/scenarios/$CICADA_SCENARIO" --controller "$CONTROLLER_URL" -H "${TARGET_URL%/}" \
        -u "$BENCH_CONNECTIONS" -r 1000 -t "${BENCH_SECONDS}s" --summary-json "$summary" \
        >"$RUN_DIR/cicada-start.log" 2>&1 || { log "cicada start failed; see $RUN_DIR/cicada-start.log"; return 1; }
    read -r u1 s1 < <(cpu_user_sys "$worker")
    G_USER_S=$(sub "$u1" "$u0")
    G_SYS_S=$(sub "$s1" "$s0")
    G_RSS_KB=$(peak_rss_kb "$worker")
    G_OVERHEAD_CPU_S=$(awk -v a="$(cpu_seconds "$collector")" -v b="$(cpu_seconds "$controller")" \
        -v before="$overhead_before" 'BEGIN { printf "%.2f", a + b - before }')

    # The --summary-json schema (README): total.requests, total.failures, duration_s.
    G_REQUESTS=$(jq -e '.total.requests' "$summary") || { log "no total.requests in $summary"; return 1; }
    G_ERRORS=$(jq -e '.total.failures' "$summary") || return 1
    G_ELAPSED=$(jq -e '.duration_s' "$summary") || return 1
    G_VERSION="cicada $("$CICADA_BIN/cicada" --version | awk '{ print $2 }')"
    # New connections and TLS handshakes with their times (summary JSON
    # `connections`): what connection: close and BENCH_TLS=1 measure.
    G_CONNECTIONS=$(jq -c '[.connections[]? | {connections, per_s, connect_p50_ms: .connect.p50_ms,
        connect_p99_ms: .connect.p99_ms, tls_handshakes: .tls.handshakes, tls_p50_ms: .tls.p50_ms,
        tls_p99_ms: .tls.p99_ms, tls_failures: .tls.failures}] | first // null' "$summary") || G_CONNECTIONS=null

    stop_pid "$worker"
    stop_pid "$controller"
    stop_pid "$collector"
}

# `cicada run` (generator name cicada_run): collector on SQLite, controller
# and one worker in one process, all on GEN_CORE, as the README runs it. CPU
# is the whole process's from time(1): start-up, the users' requests, the
# deltas, the collector's commits, the final flush and shutdown.
run_cicada_run() {
    build_cicada || return 1
    local summary=$RUN_DIR/cicada_run-summary.json
    timed_on_gen_core "$CICADA_BIN/cicada" run "$BENCH_DIR/scenarios/$CICADA_SCENARIO" \
        -H "${TARGET_URL%/}" -u "$BENCH_CONNECTIONS" -r 1000 -t "${BENCH_SECONDS}s" --workers 1 \
        --database-url "sqlite://$WORK_DIR/cicada-run.db" --summary-json "$summary" \
        >"$RUN_DIR/cicada_run.log" 2>&1 || { log "cicada run failed; see $RUN_DIR/cicada_run.log"; return 1; }
    G_REQUESTS=$(jq -e '.total.requests' "$summary") || { log "no total.requests in $summary"; return 1; }
    G_ERRORS=$(jq -e '.total.failures' "$summary") || return 1
    G_ELAPSED=$(jq -e '.duration_s' "$summary") || return 1
    G_VERSION="cicada run $("$CICADA_BIN/cicada" --version | awk '{ print $2 }')"
}
