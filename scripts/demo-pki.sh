#!/usr/bin/env bash
# The PKI walk of certfleet, on this machine only: a CA hierarchy, things, certificates
# issued from CSRs made with `openssl req`, checked with `openssl verify`, a
# deactivation, a revocation, a refused weak CSR, and the verified event log.
#   scripts/demo-pki.sh [DATA_DIR]      (default: ./demo-data, recreated)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/bootstrap.sh"
"$top/scripts/build.sh" build >/dev/null

data=${1:-$top/demo-data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$data"
export CERTFLEET_DATA_DIR=$data
cf() { "$top/build/cli/certfleet" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ certfleet %s\n' "$*"; cf "$@"; }

step "1. A data dir with an offline root CA and a default intermediate"
show init --quickstart
show ca list

step "2. Three things, each with a CSR made by 'openssl req' (the CSR asks for any subject)"
for i in 1 2 3; do
	t=sensor-00$i
	cf thing create "$t" --attr model=th-100 --attr site=lab >/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$work/$t.key" -out "$work/$t.csr" -subj "/CN=whatever-the-device-says" 2>/dev/null
	id=$(cf cert issue --thing "$t" --csr "$work/$t.csr" --out "$work/$t.pem")
	echo "issued $t: $id"
	eval "id_$i=$id"
done
show thing list

step "3. openssl checks the chain and the extensions independently"
cf ca pem default >"$work/intermediate.pem"
for i in 1 2 3; do
	openssl verify -CAfile "$data/offline-root/root.pem" -untrusted "$work/intermediate.pem" "$work/sensor-00$i.pem"
done
openssl x509 -in "$work/sensor-001.pem" -noout -subject -issuer -dates -ext subjectAltName,keyUsage,extendedKeyUsage,basicConstraints

step "4. The registry"
show cert list
show cert describe "${id_1:0:12}"

step "5. Deactivate one certificate, revoke another; a revoked certificate stays revoked"
show cert deactivate "$id_2" --why "device returned for repair"
show cert revoke "$id_3" --reason keyCompromise --why "key found on a forum"
printf '$ certfleet cert activate %s\n' "${id_3:0:12}"
if cf cert activate "$id_3"; then echo "unexpected: a revoked certificate was activated" >&2; exit 1; else echo "(refused, exit $?)"; fi
show cert list --status ACTIVE

step "6. A weak CSR is refused with a reason, and nothing is written"
openssl req -new -newkey rsa:1024 -nodes -keyout "$work/weak.key" -out "$work/weak.csr" -subj /CN=x 2>/dev/null
printf '$ certfleet cert issue --thing sensor-001 --csr weak.csr\n'
if cf cert issue --thing sensor-001 --csr "$work/weak.csr"; then echo "unexpected: issued" >&2; exit 1; else echo "(refused, exit $?)"; fi

step "7. The hash-chained event log"
show events list --limit 8 --newest-first
show events verify

printf '\nThe demo data dir is %s (certfleet --data-dir %s ...).\n' "$data" "$data"
