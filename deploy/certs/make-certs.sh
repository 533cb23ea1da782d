#!/usr/bin/env bash
# Makes the private CA of the docker-compose deployment and the TLS certificate each service mounts.
# Usage: deploy/certs/make-certs.sh [--force] [OUT_DIR]      (OUT_DIR defaults to this script's folder)
#
# Without --force an existing CA is kept (clients that already trust it keep working) and only the
# service certificates are issued again; --force starts over with a new CA. Needs bash and openssl
# (OpenSSL 1.1+, 3.x or LibreSSL): only long-standing options are used (-config, -extfile).
set -euo pipefail

# Every file this script writes, relative to OUT_DIR. test/deploy/compose.test.ts reads this list and
# checks that docker-compose.yml and deploy/rolegate.yaml use only these; the script checks it wrote them.
FILES=(
  ca/ca.crt
  ca/ca.key
  rolegate/ca.crt
  rolegate/gateway.crt
  rolegate/gateway.key
  rolegate/admin.crt
  rolegate/admin.key
  postgres/server.crt
  postgres/server.key
  keycloak/server.crt
  keycloak/server.key
)

force=0
out=""
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "make-certs.sh: unknown option $arg" >&2; exit 2 ;;
    *) [[ -z $out ]] || { echo "make-certs.sh: one OUT_DIR only" >&2; exit 2; }; out=$arg ;;
  esac
done
out=${out:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found" >&2; exit 1; }

# Private keys are created 0600 (umask); certificates are made world-readable below, because the
# containers read them as their own users (rolegate and Keycloak run as uid 1000).
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$out/ca" "$out/rolegate" "$out/postgres" "$out/keycloak"
chmod 0700 "$out/ca"
chmod 0755 "$out/rolegate" "$out/postgres" "$out/keycloak"

# Browsers refuse server certificates valid for more than 398 days (CA/Browser Forum, 2020), and the
# Keycloak device-login page is opened in a browser.
LEAF_DAYS=397
CA_DAYS=3650

cat >"$work/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = rolegate docker-compose development CA
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF

if [[ $force == 1 || ! -s $out/ca/ca.crt || ! -s $out/ca/ca.key ]]; then
  openssl req -x509 -new -config "$work/ca.cnf" -extensions v3_ca -newkey rsa:3072 -nodes -sha256 \
    -days "$CA_DAYS" -keyout "$out/ca/ca.key" -out "$out/ca/ca.crt" 2>/dev/null
  echo "made a new CA: $out/ca/ca.crt"
else
  echo "kept the existing CA: $out/ca/ca.crt (--force makes a new one)"
fi

# issue DIR NAME CN SAN...: a server certificate signed by the CA, with the names clients check.
issue() {
  local dir=$1 name=$2 cn=$3
  shift 3
  local san
  san=$(IFS=,; echo "$*")
  cat >"$work/$name.ext" <<EXT
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EXT
  # Removed first: a key handed to uid 1000 (see the note at the end) cannot be overwritten in place.
  rm -f "$out/$dir/$name.key" "$out/$dir/$name.crt"
  openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=$cn" \
    -keyout "$out/$dir/$name.key" -out "$work/$name.csr" 2>/dev/null
  # A random 128-bit serial (RFC 5280 §4.1.2.2 allows up to 20 octets): no serial file to keep.
  openssl x509 -req -in "$work/$name.csr" -CA "$out/ca/ca.crt" -CAkey "$out/ca/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$LEAF_DAYS" -sha256 \
    -extfile "$work/$name.ext" -extensions v3_leaf -out "$out/$dir/$name.crt" 2>/dev/null
  chmod 0600 "$out/$dir/$name.key"
  chmod 0644 "$out/$dir/$name.crt"
}

# The names below are the ones clients verify: `localhost` from the host (published ports), the compose
# service name inside the network (rolegate's upstream.host is `postgres`; its oidc.issuer host is `keycloak`).
issue rolegate gateway rolegate DNS:rolegate DNS:localhost IP:127.0.0.1
issue rolegate admin rolegate-admin DNS:rolegate DNS:localhost IP:127.0.0.1
issue postgres server postgres DNS:postgres
issue keycloak server keycloak DNS:keycloak DNS:localhost IP:127.0.0.1

# rolegate verifies both PostgreSQL and Keycloak against the CA: give it the certificate, never the key.
cp "$out/ca/ca.crt" "$out/rolegate/ca.crt"
chmod 0644 "$out/ca/ca.crt" "$out/rolegate/ca.crt"

for f in "${FILES[@]}"; do
  [[ -s $out/$f ]] || { echo "make-certs.sh: $f was not written" >&2; exit 1; }
  if [[ $f == */*.crt && $f != ca/ca.crt && $f != rolegate/ca.crt ]]; then
    openssl verify -CAfile "$out/ca/ca.crt" "$out/$f" >/dev/null
  fi
done
echo "wrote ${#FILES[@]} files under $out"

# On Linux, bind-mounted files keep the host's owner and mode, and the keys are 0600.
if [[ $(uname -s) == Linux && $(id -u) != 1000 ]]; then
  echo "note: rolegate and Keycloak read their keys as uid 1000; you are uid $(id -u). Before 'docker compose up', run:"
  echo "  sudo chown 1000 $out/rolegate/*.key $out/keycloak/server.key"
fi
