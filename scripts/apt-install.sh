#!/usr/bin/env bash
# Installs Debian packages for the repo's own scripts (CI runs as root on a
# fresh machine; elsewhere through sudo): `apt-get update` then `install
# --no-install-recommends`, quietly, output on stderr. Services the packages
# bring are not started (RUNLEVEL=1); the caller starts what it needs.
#   scripts/apt-install.sh WHO PACKAGE...
set -euo pipefail
who=$1
shift
echo "$who: installing $* from Debian's packages" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
