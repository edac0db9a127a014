# shellcheck shell=bash disable=SC2034  # PRIO is used by the other bench/lib files
# Helpers shared by bench/run.sh: logging, process bookkeeping, CPU and memory
# readings from /proc, waiting for ports, installing missing tools.

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# PIDs this script started; cleanup stops exactly these, newest first.
STARTED_PIDS=()

remember_pid() { STARTED_PIDS+=("$1"); }

stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

stop_started() {
    local i
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${STARTED_PIDS[i]}"
    done
    STARTED_PIDS=()
}

CLK_TCK=$(getconf CLK_TCK)

# Scheduling of the target and the generator. On a machine shared with other
# work, the measured processes should get the CPU first so the numbers
# describe the tools rather than the neighbours:
#   nice (default as root): nice -20; gentle, but a woken process may still
#     wait for a running neighbour's time slice, so latency-bound runs suffer;
#   rt: SCHED_FIFO priority 1; the measured processes always run first
#     (the kernel still leaves 5% to everything else), closest to an idle
#     machine, but it starves other work on both cores while it runs;
#   normal: no change (the only choice when not root).
PRIO=()
if [[ $(id -u) == 0 ]]; then
    case ${BENCH_PRIORITY:-nice} in
        nice) PRIO=(nice -n -20) ;;
        rt) PRIO=(chrt -f 1) ;;
        normal) ;;
        *) die "BENCH_PRIORITY must be nice, rt or normal" ;;
    esac
fi

# User and system CPU seconds of a live process (utime and stime, fields 14
# and 15 of /proc/PID/stat), space separated.
cpu_user_sys() {
    local stat rest
    stat=$(cat "/proc/$1/stat") || return 1
    rest=${stat##*) }  # the command name may contain spaces: cut after the last ')'
    # shellcheck disable=SC2086
    set -- $rest
    awk -v u="${12}" -v s="${13}" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f %.2f\n", u / hz, s / hz }'
}

# User+system CPU seconds of a live process.
cpu_seconds() {
    cpu_user_sys "$1" | awk '{ printf "%.2f", $1 + $2 }'
}

# CPU seconds all cores spent busy since boot (everything but idle and iowait).
machine_busy_seconds() {
    awk -v hz="$CLK_TCK" '$1 == "cpu" { busy = 0; for (i = 2; i <= NF; i++) if (i != 5 && i != 6) busy += $i;
        printf "%.2f", busy / hz }' /proc/stat
}

# Peak resident set size of a live process, in KiB.
peak_rss_kb() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# A free TCP port on 127.0.0.1 (for services that take an address).
loopback_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The ports of a sample target, a collector and a controller, and the
# controller's URL: TARGET_PORT, COLLECTOR_PORT, CONTROLLER_PORT, CONTROLLER.
pick_service_ports() {
    TARGET_PORT=$(loopback_port)
    COLLECTOR_PORT=$(loopback_port)
    CONTROLLER_PORT=$(loopback_port)
    CONTROLLER=http://127.0.0.1:$CONTROLLER_PORT
}

# Starts "$@" in the background with its output in RUN_DIR/NAME.log and
# remembers its PID (in STARTED, and for stop_started).
start_logged() {
    local name=$1
    shift
    RUST_LOG=warn "$@" >"$RUN_DIR/$name.log" 2>&1 &
    STARTED=$!
    remember_pid "$STARTED"
}

# Resident memory of a process in KiB (0 once it is gone).
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Starts a collector on DATABASE_URL ($1) and a controller using it, from
# BIN, on the ports of pick_service_ports; waits until both listen. Sets
# COLLECTOR_PID and CONTROLLER_PID.
start_control_plane() {
    start_logged collector "$BIN/cicada-collector" --listen "127.0.0.1:$COLLECTOR_PORT" \
        --http-listen 127.0.0.1:0 --database-url "$1"
    COLLECTOR_PID=$STARTED
    wait_tcp "$COLLECTOR_PORT" || die "the collector did not listen"
    start_logged controller "$BIN/cicada-controller" --listen "127.0.0.1:$CONTROLLER_PORT" \
        --collector "http://127.0.0.1:$COLLECTOR_PORT" --web-listen off
    CONTROLLER_PID=$STARTED
    wait_tcp "$CONTROLLER_PORT" || die "the controller did not listen"
}

sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# Fails unless something answers HTTP on 127.0.0.1:PORT within ~10 s.
wait_http() {
    local port=$1 path=${2:-/} i http=()
    # An h2c-only nginx port answers HTTP/2 alone.
    [[ ${BENCH_HTTP:-1} == 2 ]] && http=(--http2-prior-knowledge)
    for i in $(seq 1 100); do
        if curl -s -o /dev/null --max-time 1 "${http[@]}" "http://127.0.0.1:$port$path"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Fails unless a TCP port on 127.0.0.1 accepts connections within ~20 s.
wait_tcp() {
    local port=$1 i
    for i in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

APT_UPDATED=0
apt_install() {
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Installs the tools every run needs.
ensure_base_tools() {
    local missing=()
    command -v taskset >/dev/null || missing+=(util-linux)
    [[ -x /usr/bin/time ]] || missing+=(time)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
    fi
}
