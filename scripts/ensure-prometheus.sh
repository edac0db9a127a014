#!/usr/bin/env bash
# Makes sure a `prometheus` server binary is on PATH (the target CPU sampling
# test starts its own on loopback), installing Debian's package when it is
# missing: one `apt-get update`, idempotent, CI runs as root on a fresh
# machine. The package's service is not needed and not started. Prints the
# binary's path.
set -euo pipefail

if ! command -v prometheus >/dev/null 2>&1; then
  echo "ensure-prometheus: installing prometheus from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends prometheus >&2
fi
command -v prometheus
