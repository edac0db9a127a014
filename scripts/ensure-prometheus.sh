#!/usr/bin/env bash
# Makes sure a `prometheus` server binary is on PATH (the target CPU sampling
# test starts its own on loopback), installing Debian's package when it is
# missing (scripts/apt-install.sh; the package's service is not needed and
# not started). Prints the binary's path.
set -euo pipefail

if ! command -v prometheus >/dev/null 2>&1; then
  "$(dirname "$0")/apt-install.sh" ensure-prometheus prometheus
fi
command -v prometheus
