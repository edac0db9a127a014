#!/usr/bin/env bash
# The demo: builds cicada, starts the sample IoT target on loopback, runs a
# real 30 s load test against it with `cicada run`, then checks that the
# requests cicada stored equal the requests the target served.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${CICADA_DEMO_PORT:-8080}"
run_time="${CICADA_DEMO_RUN_TIME:-30s}"
host="http://127.0.0.1:$port"

if ! command -v curl >/dev/null 2>&1; then
  scripts/apt-install.sh demo curl
fi

echo "demo: building (release)..." >&2
cargo build --release --locked -p cicada-cli -p cicada-sample-target

target/release/cicada-sample-target --listen "127.0.0.1:$port" --latency 2ms &
target_pid=$!
trap 'kill $target_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fsS "$host/health" >/dev/null 2>&1 && break
  sleep 0.1
done

# The readiness probe above was counted too: start from zero.
curl -fsS -X POST "$host/stats/reset" >/dev/null

mkdir -p target/demo
target/release/cicada run examples/iot-device.yaml --host "$host" -u 200 -r 50 -t "$run_time" \
  --database-url target/demo/cicada.db --summary-json target/demo/summary.json

served=$(curl -fsS "$host/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
recorded=$(python3 -c 'import json; s=json.load(open("target/demo/summary.json"))["total"]; print(s["requests"] + s["cancelled"])')
echo "demo: the target served $served requests; cicada recorded $recorded (requests + cancelled)"
if [ "$served" != "$recorded" ]; then
  echo "demo: MISMATCH" >&2
  exit 1
fi
echo "demo: counts match exactly; the run is stored in target/demo/cicada.db"
