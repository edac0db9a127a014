# cicada — see README.md. Every target works on a fresh machine.
.PHONY: build test lint fmt demo bench bench-controller bench-ingest bench-soak release images compose-up k8s-validate

build:
	cargo build --workspace --all-targets --locked

test:
	scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

demo:
	scripts/demo.sh

# Generator benchmark (BENCHMARKS.md); `make bench-controller` is the
# controller scale benchmark (2,000 simulated workers, a 100,000-user run).
bench:
	bench/run.sh

bench-controller:
	bench/controller-scale.sh

# Collector ingest: simulated fleets pushing deltas into Postgres (BENCHMARKS.md).
bench-ingest:
	bench/collector-ingest.sh

# One hour of open-model load through separate processes: RSS of each
# service at 5/30/60 min, stored == served (BENCHMARKS.md, "Soak").
bench-soak:
	bench/soak.sh

release:
	cargo build --release --locked --workspace

# Container image (Dockerfile: its builder runs `make release`). Without a
# Docker engine, builds exactly what the image would contain and says so.
IMAGE ?= cicada:dev
images:
	@if docker info >/dev/null 2>&1; then \
		docker build -t $(IMAGE) . ; \
	else \
		echo "images: no Docker engine here; running 'make release', the build the Dockerfile runs" >&2; \
		$(MAKE) release; \
		echo "images: release build OK; 'docker build -t $(IMAGE) .' on a machine with Docker makes the image" >&2; \
	fi

# The local stack of docker-compose.yml (docs/DEPLOY.md), waiting for the
# healthchecks. WORKERS=N sets the number of workers.
WORKERS ?= 2
compose-up:
	@if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then \
		docker compose up -d --build --wait --scale worker=$(WORKERS) && docker compose ps; \
	else \
		echo "compose-up: needs a Docker engine with the compose plugin (docker compose); none here." >&2; \
		echo "compose-up: without Docker, run the same services as processes: see README 'A 5-minute tour'." >&2; \
		echo "compose-up: 'make k8s-validate' checks docker-compose.yml offline." >&2; \
		exit 1; \
	fi

# Offline checks of Dockerfile, docker-compose.yml and k8s/ (no cluster, no
# Docker): scripts/validate-deploy.sh.
k8s-validate:
	scripts/validate-deploy.sh
