#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (user postgres,
# trust auth), starting the machine's cluster if it is down, installing it
# from Debian's packages if it is missing. Prints the DATABASE_URL to use.
set -euo pipefail

host=127.0.0.1
port=5432

ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  "$(dirname "$0")/apt-install.sh" ensure-postgres postgresql
fi

if ! ready; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "ensure-postgres: starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
fi

wait_ready() {
  for _ in $(seq 1 60); do
    ready && return 0
    sleep 0.5
  done
  echo "ensure-postgres: PostgreSQL is not answering on $host:$port" >&2
  exit 1
}

can_login() { psql -h "$host" -p "$port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1 </dev/null; }

wait_ready
if ! can_login; then
  # A fresh Debian cluster asks for a password on TCP; the tests use the
  # postgres user without one, on loopback only.
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  echo "ensure-postgres: allowing trust auth for postgres on $host in $hba" >&2
  sed -i "1i host all postgres $host/32 trust" "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload >&2
  sleep 1
  wait_ready
  can_login || { echo "ensure-postgres: cannot log in as postgres on $host:$port" >&2; exit 1; }
fi
echo "postgres://postgres@$host:$port/postgres"

