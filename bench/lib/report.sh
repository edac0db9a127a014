# shellcheck shell=bash
# Results: one JSON object per generator, a results.json with the machine,
# and the printed table.

# record_result STATUS TARGET_CPU_S TARGET_SERVED MACHINE_BUSY_S: writes
# $RUN_DIR/$GEN.result.json.
record_result() {
    local status=$1 target_cpu=$2 served=$3 busy=$4 num='^[0-9]+([.][0-9]+)?$' v
    for v in G_REQUESTS G_ELAPSED G_USER_S G_SYS_S G_RSS_KB G_ERRORS; do
        [[ ${!v} =~ $num ]] || printf -v "$v" null
    done
    [[ $target_cpu =~ $num ]] || target_cpu=null
    [[ $served =~ $num ]] || served=null
    [[ $busy =~ $num ]] || busy=null
    jq -n --arg generator "$GEN" --arg version "$G_VERSION" --arg status "$status" \
        --arg target "$BENCH_TARGET" --arg target_version "${TARGET_VERSION:-}" \
        --argjson seconds "$BENCH_SECONDS" --argjson connections "$BENCH_CONNECTIONS" \
        --argjson requests "$G_REQUESTS" --argjson elapsed "$G_ELAPSED" \
        --argjson user "$G_USER_S" --argjson sys "$G_SYS_S" --argjson rss_kb "$G_RSS_KB" \
        --argjson errors "$G_ERRORS" --argjson target_cpu "$target_cpu" --argjson served "$served" \
        --argjson busy "$busy" \
        --argjson overhead "${G_OVERHEAD_CPU_S:-null}" --argjson connections_json "${G_CONNECTIONS:-null}" '
        def cpu: if $user == null or $sys == null then null else $user + $sys end;
        {
          generator: $generator, version: $version, status: $status,
          target: $target, target_version: $target_version,
          seconds: $seconds, connections: $connections,
          requests: $requests, errors: $errors, elapsed_s: $elapsed,
          requests_per_s: (if $requests == null or ($elapsed // 0) == 0 then null else $requests / $elapsed end),
          cpu_user_s: $user, cpu_sys_s: $sys, cpu_s: cpu,
          requests_per_cpu_s: (if $requests == null or (cpu // 0) == 0 then null else $requests / cpu end),
          max_rss_kb: $rss_kb,
          target_cpu_s: $target_cpu, target_served: $served,
          cicada_control_plane_cpu_s: $overhead,
          # cicada only: new connections and TLS handshakes, with their times.
          connections: $connections_json,
          # CPU used by neither the generator, the target nor the cicada
          # control plane during the run: other work on the machine, which
          # makes the run less trustworthy when it is not near zero.
          other_cpu_s: (if $busy == null or cpu == null or $target_cpu == null then null
            else $busy - cpu - $target_cpu - ($overhead // 0) end)
        }' >"$RUN_DIR/$GEN.result.json"
}

write_results() {
    local machine
    machine=$(jq -n --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)" \
        --arg kernel "$(uname -r)" --argjson cores "$(nproc)" \
        --arg memory "$(free -g | awk '/^Mem:/ { print $2 " GiB" }')" --arg loadavg "$(cut -d" " -f1-3 /proc/loadavg)" \
        '{cpu: $cpu, kernel: $kernel, cores: $cores, memory: $memory, loadavg_before_report: $loadavg}')
    local files=() g
    for g in "${GENERATORS[@]}"; do files+=("$RUN_DIR/$g.result.json"); done
    jq -s --argjson machine "$machine" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        --argjson target_core "$TARGET_CORE" --argjson gen_core "$GEN_CORE" --arg priority "${PRIO[*]:-normal}" \
        '{date: $date, machine: $machine, target_core: $target_core, generator_core: $gen_core,
          priority: $priority, results: .}' "${files[@]}" >"$RUN_DIR/results.json"
}

print_table() {
    printf '\ntarget: %s (core %s); generators on core %s; %s connections; %s s each; priority: %s\n\n' \
        "${TARGET_VERSION:-$BENCH_TARGET}" "$TARGET_CORE" "$GEN_CORE" "$BENCH_CONNECTIONS" "$BENCH_SECONDS" "${PRIO[*]:-normal}"
    # "vs wrk": requests per CPU-second relative to wrk's in the same run
    # (h2load's with BENCH_HTTP=2, where wrk cannot take part).
    local anchor=wrk
    [[ ${BENCH_HTTP:-1} == 2 ]] && anchor=h2load
    jq -r --arg anchor "$anchor" '([.results[] | select(.generator == $anchor) | .requests_per_cpu_s] | first) as $wrk
      | .results[] | [
        .version, .status,
        (.requests_per_s // "-"), (.cpu_s // "-"), (.requests_per_cpu_s // "-"),
        (if $wrk and .requests_per_cpu_s then .requests_per_cpu_s / $wrk else "-" end),
        (if .max_rss_kb then .max_rss_kb / 1024 else "-" end),
        (.errors // "-"), (.target_cpu_s // "-"), (.target_served // "-"), (.other_cpu_s // "-")
      ] | @tsv' "$RUN_DIR/results.json" |
        awk -F'\t' -v anchor="$anchor" '
        function n(x, f) { return x == "-" ? "-" : sprintf(f, x) }
        BEGIN {
            printf "%-22s %-7s %12s %8s %14s %7s %9s %8s %11s %13s %10s\n", "generator", "status",
                "requests/s", "CPU s", "req/CPU-s", "vs " anchor, "RSS MiB", "errors", "target CPU", "target served", "other CPU"
        }
        {
            printf "%-22s %-7s %12s %8s %14s %7s %9s %8s %11s %13s %10s\n", $1, $2, n($3, "%.0f"),
                n($4, "%.2f"), n($5, "%.0f"), n($6, "%.2fx"), n($7, "%.1f"), $8, n($9, "%.2f"), $10, n($11, "%.2f")
        }'
    # What new connections cost (cicada times each connect and handshake).
    jq -r '.results[] | select(.connections != null) | .connections as $c
        | "\(.version): \($c.connections) new connections (\($c.per_s | floor)/s), connect p50 \($c.connect_p50_ms) ms p99 \($c.connect_p99_ms) ms"
          + (if $c.tls_handshakes then ", \($c.tls_handshakes) TLS handshakes p50 \($c.tls_p50_ms) ms p99 \($c.tls_p99_ms) ms, \($c.tls_failures) failed" else "" end)
          + (if .target_cpu_s and $c.connections * 2 > .requests then "; target CPU per new connection: \(1000000 * .target_cpu_s / $c.connections | floor) us" else "" end)' \
        "$RUN_DIR/results.json"
}
