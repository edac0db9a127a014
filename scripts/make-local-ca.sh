#!/usr/bin/env bash
# Makes a local CA and the certificates for TLS and mTLS between cicada's
# services on one machine (docker-compose.tls.yml; docs/DEPLOY.md, "TLS and
# mTLS"), with openssl:
#   scripts/make-local-ca.sh [DIR]      # default: deploy/tls
# DIR gets ca.pem (+ ca.key) and, signed by it, collector.pem/.key and
# controller.pem/.key (server and client auth, valid for their compose
# service name, localhost and 127.0.0.1), worker.pem/.key and cli.pem/.key
# (client auth). EC P-256 keys, PKCS#8. Existing files are kept unless
# CICADA_TLS_FORCE=1: re-running after a renewal of the leaves only
# (CICADA_TLS_RENEW=1) keeps the CA so running clients still trust the new
# certificates, which the services reload without a restart.
# For local use: the keys are readable by every user (the containers run as
# uid 10001); keep DIR out of version control (deploy/tls/ is git-ignored).
set -euo pipefail

dir="${1:-deploy/tls}"
days="${CICADA_TLS_DAYS:-825}"
mkdir -p "$dir"
cd "$dir"

log() { echo "make-local-ca: $*" >&2; }

if [ -e ca.pem ] && [ "${CICADA_TLS_FORCE:-0}" != 1 ] && [ "${CICADA_TLS_RENEW:-0}" != 1 ]; then
  log "$dir/ca.pem exists; set CICADA_TLS_RENEW=1 to reissue the certificates with this CA, or CICADA_TLS_FORCE=1 to start over"
  exit 0
fi

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -e ca.pem ] || [ "${CICADA_TLS_FORCE:-0}" = 1 ]; then
  key ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=cicada local CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem
  log "made a new CA: $dir/ca.pem"
fi

# leaf NAME USAGES [SAN]
leaf() {
  local name=$1 usages=$2 san=${3:-}
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usages"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } >"$ext"
  key "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=cicada-$name" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days "$days" -sha256 -extfile "$ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$ext"
  chmod 644 "$name.key" "$name.pem"
  log "issued $dir/$name.pem ($usages${san:+; $san})"
}

leaf collector serverAuth,clientAuth "DNS:collector,DNS:localhost,IP:127.0.0.1"
leaf controller serverAuth,clientAuth "DNS:controller,DNS:localhost,IP:127.0.0.1"
leaf worker clientAuth
leaf cli clientAuth
chmod 600 ca.key
openssl verify -CAfile ca.pem collector.pem controller.pem worker.pem cli.pem >&2
