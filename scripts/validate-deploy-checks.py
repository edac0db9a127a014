#!/usr/bin/env python3
"""cicada's own rules for its deployment files, on top of the schemas.

    validate-deploy-checks.py k8s RENDERED.yaml...
    validate-deploy-checks.py compose docker-compose.yml RESOLVED_OUT.yml
    validate-deploy-checks.py compose-tls docker-compose.yml docker-compose.tls.yml CA_DIR
    validate-deploy-checks.py docker .dockerignore

`k8s` checks the output of `kubectl kustomize`: every object in the cicada
namespace, every container with CPU and memory requests, non-root and a
read-only root filesystem, gRPC probes on the controller and collector
(`cicada health` over https with the TLS component), the
shared token Secret in controller, collector and workers, the cert-manager
Certificates and the TLS Secrets they make, NetworkPolicy pod
selectors that match pods, scrape monitors (PodMonitoring, PodMonitor,
ServiceMonitor: CRDs the schemas do not cover) that select pods or Services
and name ports they have, scraping /metrics, the
cicada image tagged and the same everywhere, and the reference case's numbers
(worker requests 200m / limits 500m; HPA min 10, max 100, CPU 50%; internal
LoadBalancer on GKE).

`compose` resolves ${VAR}, ${VAR:-default} and $$ the way docker compose does
with an empty environment, writes the result for the schema check, and checks
the start order (healthchecks, no sleeps) and that workers can be scaled.
`docker` checks that .dockerignore keeps every input of `make release` (the
workspace manifests, members, proto, migrations) in the build context.
Run by scripts/validate-deploy.sh.
"""

import fnmatch
import os
import re
import sys
import tomllib

import yaml

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

errors = []


def error(where, message):
    errors.append(f"{where}: {message}")


def containers(pod_spec):
    return list(pod_spec.get("initContainers", [])) + list(pod_spec.get("containers", []))


def check_pod(where, pod_spec):
    pod_sc = pod_spec.get("securityContext", {})
    for c in containers(pod_spec):
        cw = f"{where} container {c['name']}"
        requests = c.get("resources", {}).get("requests", {})
        for resource in ("cpu", "memory"):
            if resource not in requests:
                error(cw, f"no {resource} request")
        sc = c.get("securityContext", {})
        if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
            error(cw, "runAsNonRoot is not true")
        if sc.get("readOnlyRootFilesystem") is not True:
            error(cw, "readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            error(cw, "allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            error(cw, "capabilities are not dropped")


def selector_matches(selector, labels):
    """A LabelSelector (matchLabels + matchExpressions) against pod labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def check_network_policies(name, docs):
    """Every pod selector of a NetworkPolicy (the policy's own, and each
    from/to peer in this namespace) matches at least one pod template of the
    rendering: a selector that matches nothing silently allows nothing."""
    pods = [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"].get("metadata", {}).get("labels", {}) or {})
        for d in docs
        if d["kind"] in POD_OWNERS
    ]
    for d in docs:
        if d["kind"] != "NetworkPolicy":
            continue
        where = f"{name}: NetworkPolicy/{d['metadata']['name']}"
        spec = d["spec"]
        selectors = [("podSelector", spec.get("podSelector") or {})]
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                for peer in rule.get(peers_key) or []:
                    # A namespaceSelector picks pods of other namespaces too.
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        selectors.append((f"{direction}[{i}].{peers_key} podSelector", peer["podSelector"]))
        for what, selector in selectors:
            if not selector:
                continue  # {} selects every pod
            if not any(selector_matches(selector, labels) for _, labels in pods):
                error(where, f"{what} {selector} matches no pod template")


def check_monitors(name, docs):
    """Each monitor selects at least one pod template (PodMonitoring,
    PodMonitor) or Service (ServiceMonitor), and every endpoint names a port
    that all of them have and scrapes /metrics."""
    pods = [
        (d["spec"]["template"].get("metadata", {}).get("labels", {}) or {},
         {p.get("name") for c in containers(d["spec"]["template"]["spec"]) for p in c.get("ports", [])})
        for d in docs
        if d["kind"] in POD_OWNERS
    ]
    services = [
        (d["metadata"].get("labels", {}) or {}, {p.get("name") for p in d["spec"].get("ports", [])})
        for d in docs
        if d["kind"] == "Service"
    ]
    for d in docs:
        kind = d["kind"]
        if kind not in ("PodMonitoring", "PodMonitor", "ServiceMonitor"):
            continue
        where = f"{name}: {kind}/{d['metadata']['name']}"
        spec = d["spec"]
        targets = services if kind == "ServiceMonitor" else pods
        endpoints = spec.get("podMetricsEndpoints" if kind == "PodMonitor" else "endpoints") or []
        selected = [ports for labels, ports in targets if selector_matches(spec.get("selector") or {}, labels)]
        if not selected:
            error(where, f"selector {spec.get('selector')} matches nothing")
        if not endpoints:
            error(where, "no endpoints")
        for endpoint in endpoints:
            if endpoint.get("path") != "/metrics":
                error(where, f"path {endpoint.get('path')!r} is not /metrics")
            for ports in selected:
                if endpoint.get("port") not in ports:
                    error(where, f"port {endpoint.get('port')!r} is not among {sorted(p for p in ports if p)}")


def check_token(name, by_kind):
    """The shared token Secret exists and reaches every cicada gRPC party."""
    secret = by_kind.get("Secret", {}).get("cicada-token")
    if secret is None or "token" not in {**secret.get("stringData", {}), **secret.get("data", {})}:
        error(name, "no cicada-token Secret with key token")
    for dep_name in ("cicada-controller", "cicada-collector", "cicada-worker"):
        dep = by_kind.get("Deployment", {}).get(dep_name)
        if dep is None:
            continue
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        ref = env.get("CICADA_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
        if (ref.get("name"), ref.get("key")) != ("cicada-token", "token"):
            error(f"{name}: {dep_name}", "CICADA_TOKEN does not come from Secret cicada-token, key token")


def check_certificates(name, by_kind):
    """cert-manager objects (k8s/components/tls), which kubernetes-validate
    has no schema for: each Certificate's Issuer exists and makes its Secret;
    every TLS Secret a Deployment mounts comes from a Certificate; servers'
    certificates are for server and client auth, the workers' for client auth."""
    certificates = by_kind.get("Certificate", {})
    issuers = by_kind.get("Issuer", {})
    secrets = {}
    for cert_name, cert in certificates.items():
        where = f"{name}: Certificate/{cert_name}"
        spec = cert.get("spec", {})
        ref = spec.get("issuerRef", {})
        if ref.get("kind") != "Issuer" or ref.get("name") not in issuers:
            error(where, f"issuerRef {ref} names no Issuer of this rendering")
        if not spec.get("secretName"):
            error(where, "no secretName")
        secrets[spec.get("secretName")] = spec
        ca = issuers.get(ref.get("name"), {}).get("spec", {}).get("ca", {})
        if ca and ca.get("secretName") not in {c.get("spec", {}).get("secretName") for c in certificates.values()}:
            error(where, f"its Issuer's CA Secret {ca.get('secretName')} comes from no Certificate")
    for dep_name, dep in by_kind.get("Deployment", {}).items():
        for volume in dep["spec"]["template"]["spec"].get("volumes", []):
            secret = volume.get("secret", {}).get("secretName", "")
            if not secret.endswith("-tls"):
                continue
            spec = secrets.get(secret)
            if spec is None:
                error(f"{name}: {dep_name}", f"mounts Secret {secret}, which no Certificate makes")
                continue
            wanted = {"client auth"} | ({"server auth"} if dep_name != "cicada-worker" else set())
            if not wanted <= set(spec.get("usages", [])):
                error(f"{name}: {dep_name}", f"certificate {secret} lacks usages {sorted(wanted)}")


def check_k8s(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    name = os.path.basename(path)
    cicada_images = set()
    for d in docs:
        kind, meta = d["kind"], d["metadata"]
        where = f"{name}: {kind}/{meta['name']}"
        if kind not in CLUSTER_SCOPED and meta.get("namespace") != "cicada":
            error(where, f"namespace is {meta.get('namespace')!r}, not 'cicada'")
        if kind in POD_OWNERS:
            pod_spec = d["spec"]["template"]["spec"]
            check_pod(where, pod_spec)
            for c in containers(pod_spec):
                image = c["image"]
                if image.split("/")[-1].split(":")[0] == "cicada":
                    cicada_images.add(image)
                if ":" not in image.split("/")[-1]:
                    error(where, f"image {image} has no tag")
        if kind == "Service" and meta["name"] == "cicada-controller" and d["spec"].get("type") == "LoadBalancer":
            annotation = meta.get("annotations", {}).get("networking.gke.io/load-balancer-type")
            if annotation != "Internal":
                error(where, "a LoadBalancer controller must be internal")
    if len(cicada_images) > 1:
        error(name, f"different cicada images: {sorted(cicada_images)}")

    deployments = by_kind.get("Deployment", {})
    for service, port in (("cicada-controller", 7000), ("cicada-collector", 7100)):
        dep = deployments.get(service)
        if dep is None:
            error(name, f"no {service} Deployment")
            continue
        c = dep["spec"]["template"]["spec"]["containers"][0]
        # With TLS (k8s/components/tls) the kubelet's gRPC probe cannot
        # talk to the port: `cicada health` over https does the same check.
        tls_probe = ["cicada", "health", "--grpc", f"https://localhost:{port}"]
        for probe in ("readinessProbe", "livenessProbe"):
            spec = c.get(probe, {})
            if spec.get("grpc", {}).get("port") != port and spec.get("exec", {}).get("command") != tls_probe:
                error(f"{name}: {service}", f"{probe} is not grpc on {port} (or `cicada health` over https with TLS)")
    worker = deployments.get("cicada-worker")
    if worker is None:
        error(name, "no cicada-worker Deployment")
    else:
        res = worker["spec"]["template"]["spec"]["containers"][0]["resources"]
        if res.get("requests", {}).get("cpu") != "200m" or res.get("limits", {}).get("cpu") != "500m":
            error(f"{name}: cicada-worker", "cpu is not requests 200m / limits 500m")
    if "cicada-database" not in by_kind.get("Secret", {}):
        error(name, "no cicada-database Secret")
    hpa = by_kind.get("HorizontalPodAutoscaler", {}).get("cicada-target")
    if hpa is not None:
        spec = hpa["spec"]
        utilization = spec["metrics"][0]["resource"]["target"].get("averageUtilization")
        if (spec.get("minReplicas"), spec.get("maxReplicas"), utilization) != (10, 100, 50):
            error(f"{name}: hpa/cicada-target", "is not min 10, max 100, CPU 50%")
        if "replicas" in deployments.get("cicada-target", {}).get("spec", {}):
            error(f"{name}: cicada-target", "sets replicas, which the HPA owns")
    check_network_policies(name, docs)
    check_monitors(name, docs)
    check_certificates(name, by_kind)
    check_token(name, by_kind)
    if by_kind.get("NetworkPolicy", {}).get("default-deny") is None:
        error(name, "no default-deny NetworkPolicy")
    for kind in POD_OWNERS:
        for obj_name in by_kind.get(kind, {}):
            if obj_name not in by_kind.get("PodDisruptionBudget", {}):
                error(f"{name}: {kind}/{obj_name}", "has no PodDisruptionBudget")
    return len(docs)


VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def resolve(text):
    """Compose's interpolation with no variables set: defaults or empty."""

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return m.group(2) or ""

    return VAR.sub(sub, text)


def check_compose(path, resolved_out):
    raw = open(path).read()
    resolved = resolve(raw)
    with open(resolved_out, "w") as f:
        f.write(resolved)
    doc = yaml.safe_load(resolved)
    services = doc["services"]
    for name, svc in services.items():
        where = f"{path}: service {name}"
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:
                error(where, f"depends on unknown service {dep}")
            elif cond.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                error(where, f"waits for {dep} to be healthy, but {dep} has no healthcheck")
        command = " ".join(map(str, svc.get("command") or []))
        if re.search(r"\bsleep\b", command) or re.search(r"\bsleep\b", str(svc.get("entrypoint", ""))):
            error(where, "starts with a sleep; use depends_on + healthcheck")
    for required in ("postgres", "collector", "controller", "worker", "target", "otel-collector"):
        if required not in services:
            error(path, f"no {required} service")
    worker = services.get("worker", {})
    if "container_name" in worker or worker.get("ports"):
        error(f"{path}: worker", "container_name or ports prevent --scale worker=N")
    for name in ("collector", "controller", "worker", "cli"):
        if "CICADA_TOKEN" not in (services.get(name, {}).get("environment") or {}):
            error(f"{path}: {name}", "no CICADA_TOKEN")
    if "healthcheck" not in services.get("postgres", {}):
        error(f"{path}: postgres", "no healthcheck")
    if not any(v.split(":")[0] == "pgdata" for v in services.get("postgres", {}).get("volumes", [])):
        error(f"{path}: postgres", "no named volume")
    if services.get("collector", {}).get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        error(f"{path}: collector", "does not wait for a healthy postgres")
    # The OpenTelemetry Collector's config file must exist and parse.
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source.endswith((".yaml", ".yml")):
                full = os.path.join(os.path.dirname(path) or ".", source)
                if not os.path.isfile(full):
                    error(path, f"mounts missing file {source}")
                else:
                    yaml.safe_load(open(full))
    return len(services)


def check_dockerignore(path):
    patterns = []
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line.rstrip("/").removeprefix("/"))
    members = tomllib.load(open("Cargo.toml", "rb"))["workspace"]["members"]
    needed = ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "Makefile", "proto", "migrations", "examples"]
    needed += members
    for item in needed:
        parts = item.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            if pattern.startswith("!"):
                continue
            bare = pattern.removeprefix("**/")
            if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, bare) for p in prefixes):
                error(path, f"{pattern!r} excludes {item}, which the image build needs")
    return len(needed)


def check_compose_tls(base_path, override_path, ca_dir):
    """docker-compose.tls.yml only overrides services of docker-compose.yml,
    serves TLS with mTLS on the collector and controller, dials https://, and
    names only files scripts/make-local-ca.sh made (in ca_dir)."""
    base = yaml.safe_load(resolve(open(base_path).read()))["services"]
    services = yaml.safe_load(resolve(open(override_path).read()))["services"]
    for name, svc in services.items():
        where = f"{override_path}: service {name}"
        if name not in base:
            error(where, "is not a service of " + base_path)
        if "./deploy/tls:/etc/cicada/tls:ro" not in svc.get("volumes", []):
            error(where, "does not mount ./deploy/tls at /etc/cicada/tls read-only")
        env = svc.get("environment") or {}
        for key, value in env.items():
            if key.startswith("CICADA_TLS_"):
                made = os.path.join(ca_dir, os.path.basename(str(value)))
                if not str(value).startswith("/etc/cicada/tls/") or not os.path.isfile(made):
                    error(where, f"{key}={value} is not a file scripts/make-local-ca.sh makes")
        for key in ("CICADA_CONTROLLER", "CICADA_COLLECTOR"):
            if key in env and not str(env[key]).startswith("https://"):
                error(where, f"{key} is not https://")
    for name in ("collector", "controller"):
        env = services.get(name, {}).get("environment") or {}
        for key in ("CICADA_TLS_CERT", "CICADA_TLS_KEY", "CICADA_TLS_CLIENT_CA"):
            if key not in env:
                error(f"{override_path}: {name}", f"no {key}")
        test = services.get(name, {}).get("healthcheck", {}).get("test", [])
        if "https://" not in " ".join(test):
            error(f"{override_path}: {name}", "the healthcheck does not use https://")
    for name in ("worker", "cli"):
        env = services.get(name, {}).get("environment") or {}
        if "CICADA_TLS_CLIENT_CERT" not in env:
            error(f"{override_path}: {name}", "no client certificate (mTLS)")
    return len(services)


def main():
    mode, *paths = sys.argv[1:]
    if mode == "k8s":
        summaries = [f"{os.path.basename(p)}: {check_k8s(p)} objects follow cicada's rules" for p in paths]
    elif mode == "compose":
        summaries = [f"{paths[0]}: {check_compose(paths[0], paths[1])} services, start order by healthchecks"]
    elif mode == "compose-tls":
        summaries = [f"{paths[1]}: {check_compose_tls(*paths)} services over TLS and mTLS"]
    elif mode == "docker":
        summaries = [f"{paths[0]}: keeps the {check_dockerignore(paths[0])} inputs of make release"]
    else:
        sys.exit(f"unknown mode {mode}")
    for line in errors or summaries:
        print(f"validate-deploy: {line}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
