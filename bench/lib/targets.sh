# shellcheck shell=bash
# The servers under load: nginx (a private config in a temp dir, one process,
# a 3-byte body on /) or cicada's sample target, pinned to TARGET_CORE.
# Sets TARGET_PID and TARGET_URL.

start_nginx() {
    command -v nginx >/dev/null || apt_install nginx-light
    # BENCH_HTTP=2: h2c with prior knowledge on the plain port.
    local NGINX_LISTEN_HTTP2=''
    [[ ${BENCH_HTTP:-1} == 2 ]] && NGINX_LISTEN_HTTP2=' http2'
    local dir=$WORK_DIR/nginx
    mkdir -p "$dir/logs" "$dir/tmp"
    # BENCH_TLS=1: HTTPS with a self-signed certificate made for this run
    # (ECDSA P-256, as most ingestion endpoints use).
    local NGINX_SSL='' scheme=http
    if [[ ${BENCH_TLS:-0} == 1 ]]; then
        command -v openssl >/dev/null || apt_install openssl
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
            -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
            die "failed to make a certificate with openssl"
        NGINX_SSL=" ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        ssl_session_tickets off;
        ssl_session_cache off"
        scheme=https
    fi
    # master_process off: one process does all the work, so its CPU is the
    # target's CPU; access_log off: nothing but the request path is measured.
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 65s;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$TARGET_PORT$NGINX_LISTEN_HTTP2$NGINX_SSL;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
    taskset -c "$TARGET_CORE" "${PRIO[@]}" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
        >"$dir/logs/stdout.log" 2>&1 &
    TARGET_PID=$!
    remember_pid "$TARGET_PID"
    TARGET_URL=$scheme://127.0.0.1:$TARGET_PORT/
    wait_tcp "$TARGET_PORT" || die "nginx did not start; see $dir/logs/error.log"
    TARGET_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
}

start_sample_target() {
    log "building cicada-sample-target (release)"
    (cd "$REPO" && cargo build --release -q -p cicada-sample-target) ||
        die "failed to build cicada-sample-target"
    local bin=$REPO/target/release/cicada-sample-target
    RUST_LOG=warn taskset -c "$TARGET_CORE" "${PRIO[@]}" "$bin" --listen "127.0.0.1:$TARGET_PORT" --threads 1 \
        >"$WORK_DIR/sample-target.log" 2>&1 &
    TARGET_PID=$!
    remember_pid "$TARGET_PID"
    TARGET_URL=http://127.0.0.1:$TARGET_PORT/
    wait_http "$TARGET_PORT" /health || die "sample target did not start; see $WORK_DIR/sample-target.log"
    TARGET_VERSION="cicada-sample-target $("$bin" --version | awk '{ print $2 }')"
}

start_target() {
    port_free "$TARGET_PORT" || die "port $TARGET_PORT is in use; set BENCH_PORT"
    case $BENCH_TARGET in
        nginx) start_nginx ;;
        sample) start_sample_target ;;
        *) die "BENCH_TARGET must be nginx or sample, not '$BENCH_TARGET'" ;;
    esac
    log "target $TARGET_VERSION at $TARGET_URL (pid $TARGET_PID, core $TARGET_CORE)"
}

# The sample target counts what it served: zero it before a generator runs.
target_reset() {
    [[ $BENCH_TARGET == sample ]] || return 0
    curl -sf -X POST --max-time 5 "http://127.0.0.1:$TARGET_PORT/stats/reset" >/dev/null
}

# Responses the sample target produced since the reset, or null for nginx.
target_served() {
    if [[ $BENCH_TARGET == sample ]]; then
        curl -sf --max-time 5 "http://127.0.0.1:$TARGET_PORT/stats" | jq '.total'
    else
        echo null
    fi
}
