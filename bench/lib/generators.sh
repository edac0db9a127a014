# shellcheck shell=bash disable=SC2034  # G_* results are read by report.sh
# The load generators. Each run_<name> function loads TARGET_URL for
# BENCH_SECONDS with BENCH_CONNECTIONS connections from GEN_CORE and sets:
#   G_REQUESTS  requests completed (any status)   G_ELAPSED  seconds of load
#   G_USER_S    user CPU seconds       G_SYS_S    system CPU seconds
#   G_RSS_KB    peak resident memory   G_ERRORS   non-2xx answers and socket errors
#   G_VERSION   the generator's version
# It returns non-zero if the generator could not run. Commands are checked
# one by one (`|| return 1`): `set -e` does not apply inside a function
# called as an `if` condition.

# A hard stop for any generator: the run length plus setup and drain slack.
gen_timeout() { echo $((BENCH_SECONDS + 60)); }

# Runs "$@" pinned to GEN_CORE under /usr/bin/time and a timeout; sets the
# CPU and memory results from what time(1) reports.
timed_on_gen_core() {
    local tf=$RUN_DIR/$GEN.time
    taskset -c "$GEN_CORE" "${PRIO[@]}" /usr/bin/time -f "%e %U %S %M" -o "$tf" \
        timeout "$(gen_timeout)" "$@" || return 1
    read -r _ G_USER_S G_SYS_S G_RSS_KB <"$tf" || return 1
}

ensure_oha() {
    command -v oha >/dev/null && return 0
    [[ -x $HOME/.cargo/bin/oha ]] && return 0
    log "installing oha with cargo install --locked (compiles for a few minutes)"
    cargo install oha --locked -q || return 1
}

run_wrk() {
    command -v wrk >/dev/null || apt_install wrk || return 1
    local out=$RUN_DIR/wrk.txt close=()
    # BENCH_CONNECTION=close: the server closes after each answer, wrk reconnects.
    [[ ${BENCH_CONNECTION:-keep_alive} == close ]] && close=(-H "Connection: close")
    timed_on_gen_core wrk -t "$BENCH_WRK_THREADS" -c "$BENCH_CONNECTIONS" -d "${BENCH_SECONDS}s" \
        "${close[@]}" "$TARGET_URL" >"$out" 2>&1 || return 1
    # "  1650000 requests in 10.00s, 200.00MB read"
    read -r G_REQUESTS G_ELAPSED < <(awk '/ requests in / { sub(/s,$/, "", $4); print $1, $4 }' "$out")
    [[ -n ${G_REQUESTS:-} ]] || return 1
    # wrk counts a non-2xx answer as a request too: report those as errors.
    G_ERRORS=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    G_VERSION=$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }') || true  # wrk -v exits 1
}

# h2load (nghttp2): the HTTP/2 anchor, h2c with prior knowledge over
# http://, one request in flight per connection (-m 1), like cicada's users.
run_h2load() {
    command -v h2load >/dev/null || apt_install nghttp2-client || return 1
    local out=$RUN_DIR/h2load.txt
    timed_on_gen_core h2load -t 1 -c "$BENCH_CONNECTIONS" -m 1 -D "$BENCH_SECONDS" \
        "$TARGET_URL" >"$out" 2>&1 || return 1
    # "finished in 10.00s, 123456.70 req/s, 4.00MB/s"
    # "requests: 1234567 total, 1234631 started, 1234567 done, 1234567 succeeded, 0 failed, 0 errored, 0 timeout"
    G_ELAPSED=$(awk '/^finished in / { sub(/s,$/, "", $3); print $3 }' "$out")
    G_REQUESTS=$(awk '/^requests: / { print $6 }' "$out")
    [[ -n ${G_REQUESTS:-} && -n ${G_ELAPSED:-} ]] || return 1
    G_ERRORS=$(awk '/^requests: / { print $10 + $12 + $14 }' "$out")
    # A non-2xx answer is "succeeded" to h2load: count it from the status line.
    G_ERRORS=$((G_ERRORS + $(awk '/^status codes: / { gsub(/,/, ""); print $5 + $7 + $9 }' "$out")))
    G_VERSION=$(h2load --version | awk 'NR == 1 { print $1, $2 }')
}

run_oha() {
    ensure_oha || return 1
    local oha out=$RUN_DIR/oha.json
    oha=$(command -v oha || echo "$HOME/.cargo/bin/oha")
    local format=(--json) http=()
    "$oha" --help | grep -q -- '--output-format' && format=(--output-format json)
    [[ ${BENCH_HTTP:-1} == 2 ]] && http=(--http2)
    [[ ${BENCH_CONNECTION:-keep_alive} == close ]] && http+=(-H "Connection: close")
    timed_on_gen_core "$oha" -z "${BENCH_SECONDS}s" -c "$BENCH_CONNECTIONS" --no-tui "${format[@]}" "${http[@]}" \
        "$TARGET_URL" >"$out" 2>"$RUN_DIR/oha.stderr" || return 1
    G_REQUESTS=$(jq '[.statusCodeDistribution // {} | to_entries[] | .value] | add // 0' "$out") || return 1
    G_ERRORS=$(jq '([.statusCodeDistribution // {} | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0)
        + ([.errorDistribution // {} | to_entries[]
            | select(.key != "aborted due to deadline") | .value] | add // 0)' "$out") || return 1
    # Requests still in flight at the deadline are aborted: neither counted
    # as requests nor as errors, like wrk.
    G_ELAPSED=$(jq '.summary.total' "$out") || return 1
    G_VERSION=$("$oha" --version | head -n 1)
}

ensure_locust() {
    LOCUST_VENV=${BENCH_LOCUST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cicada-bench/locust-venv}
    [[ -x $LOCUST_VENV/bin/locust ]] && return 0
    log "installing locust into $LOCUST_VENV"
    if ! python3 -m venv "$LOCUST_VENV"; then
        apt_install python3-venv || return 1
        python3 -m venv "$LOCUST_VENV" || return 1
    fi
    "$LOCUST_VENV/bin/pip" install -q locust || return 1
}

run_locust() {
    ensure_locust || return 1
    local prefix=$RUN_DIR/locust
    timed_on_gen_core "$LOCUST_VENV/bin/locust" -f "$BENCH_DIR/locust/locustfile.py" --headless \
        -u "$BENCH_CONNECTIONS" -r "$BENCH_CONNECTIONS" -t "${BENCH_SECONDS}s" -H "${TARGET_URL%/}" \
        --csv "$prefix" --only-summary --stop-timeout 1 --loglevel WARNING \
        >"$RUN_DIR/locust.log" 2>&1 || true  # locust exits 1 when any request failed
    [[ -s ${prefix}_stats.csv ]] || return 1
    read -r G_REQUESTS G_ERRORS < <(python3 - "${prefix}_stats.csv" <<'EOF'
import csv, sys
for row in csv.DictReader(open(sys.argv[1])):
    if row["Name"] == "Aggregated":
        total, failed = int(row["Request Count"]), int(row["Failure Count"])
        print(total, failed)
EOF
    ) || return 1
    G_ELAPSED=$BENCH_SECONDS
    G_VERSION="locust $("$LOCUST_VENV/bin/locust" --version 2>&1 | awk '{ print $2 }')"
}
