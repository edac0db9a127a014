# syntax=docker/dockerfile:1.7
# One image with every cicada binary: cicada (CLI), cicada-controller,
# cicada-collector, cicada-worker, cicada-sample-target. Each container picks
# its binary with `command:` (compose) or `command:` (Kubernetes). Why one image
# and not one per service: see docs/DEPLOY.md ("Images").
#
#   docker build -t cicada:dev .          # or: make images
#
# The builder runs `make release`, the same target CI runs without Docker, so
# the build the image contains is the build CI proves.

# rust:1.95.0 exactly, the channel rust-toolchain.toml pins: rustup then uses
# the image's toolchain instead of downloading another one.
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the
# binaries are copied out in the same step because a cache mount is not part
# of the image. `strip --strip-debug` drops the DWARF line tables of the
# release profile's `debug = 1` (about 4x smaller) and keeps the symbols, so
# backtraces still name functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    make release \
    && mkdir -p /out \
    && for bin in cicada cicada-controller cicada-collector cicada-worker cicada-sample-target; do \
         strip --strip-debug -o "/out/$bin" "target/release/$bin"; \
       done

# debian-slim rather than distroless: compose's healthchecks need a shell
# (see docker-compose.yml); the binaries need only glibc and libgcc_s.
FROM ${RUNTIME_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" cicada \
    && useradd --system --uid "${UID}" --gid cicada --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cicada
COPY --from=builder /out/ /usr/local/bin/
COPY examples/ /scenarios/
WORKDIR /tmp
USER ${UID}:${UID}
# Documentation only; each service's listen address is set by its env vars.
# 7000 controller gRPC, 7100 collector gRPC, 8080 sample target HTTP.
EXPOSE 7000 7100 8080
CMD ["cicada", "--help"]
