#!/usr/bin/env bash
# bench/broker: the certfleet broker plugin's cost on mutual-TLS connects. Two brokers in
# the same run, the same listener settings, one with certfleet_broker.so and one without;
# bench_mtls_connect against each with the same device certificate. Prints both rates and
# the plugin's overhead. Results: docs/benchmarks.md.
#   bench/broker.sh [-n CONNECTS] [-b BUILD_DIR] [-k KEEP_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
count=3000
build=$top/build
keep=
while getopts "n:b:k:" o; do
	case $o in
	n) count=$OPTARG ;;
	b) build=$(cd "$OPTARG" && pwd) ;;
	k) keep=$OPTARG ;;
	*) echo "usage: $0 [-n CONNECTS] [-b BUILD_DIR] [-k KEEP_DIR]" >&2; exit 2 ;;
	esac
done
[ -f "$build/broker/certfleet_broker.so" ] || "$top/scripts/build.sh" "$(basename "$build")" >/dev/null
if [ -n "$keep" ]; then rm -rf "$keep"; mkdir -p "$keep"; work=$(cd "$keep" && pwd); else work=$(mktemp -d /tmp/certfleet-bench-broker.XXXXXX); fi
. "$top/scripts/lib/fleet.sh"
trap 'fleet_cleanup; [ -n "$keep" ] || rm -rf "$work"' EXIT
cf() { "$build/cli/certfleet" "$@"; }

fleet_init "$work" "$build" >/dev/null
# One device: a key and CSR by openssl, its certificate by certfleet.
cf thing create bench-dev >/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/dev.key" \
	-out "$work/dev.csr" -subj /CN=bench-dev 2>/dev/null
cf cert issue --thing bench-dev --csr "$work/dev.csr" --out "$work/dev.pem" >/dev/null
fleet_broker # the plain broker (with the ACL of the demo)
plain_port=$fleet_port
cat "$work/dev.pem" >"$work/dev-chain.pem"
cf ca pem default >>"$work/dev-chain.pem"

# The same listener with the plugin instead of the ACL.
plugin_port=$(fleet_free_port)
sed -e "s/^listener .*/listener $plugin_port 127.0.0.1/" -e '/^use_identity_as_username/d' \
	-e '/^acl_file/d' -e "s|^log_dest .*|log_dest file $work/mosquitto-plugin.log|" \
	-e "s|^persistence_location .*|persistence_location $work/plugin-|" "$work/mosquitto.conf" >"$work/plugin.conf"
cat >>"$work/plugin.conf" <<EOC
use_identity_as_username false
plugin $build/broker/certfleet_broker.so
plugin_opt_registry $CERTFLEET_DATA_DIR/registry.db
EOC
mosquitto -c "$work/plugin.conf" 2>>"$work/mosquitto-plugin.log" &
fleet_pids+=($!)
sleep 0.5

run() {
	"$build/bench/bench_mtls_connect" -p "$1" -a "$work/data/broker-ca.pem" -c "$work/dev-chain.pem" \
		-k "$work/dev.key" -i bench-dev -n "$count" -t 30 -P 1 | sed -n 's/.*rate=\([0-9.]*\).*/\1/p'
}
# Alternate, so that both see the same machine.
p1=$(run "$plain_port"); g1=$(run "$plugin_port"); p2=$(run "$plain_port"); g2=$(run "$plugin_port")
awk -v p1="$p1" -v p2="$p2" -v g1="$g1" -v g2="$g2" 'BEGIN {
	p = (p1 + p2) / 2; g = (g1 + g2) / 2
	printf "mTLS connects/s without the plugin  %.1f (%s, %s)\n", p, p1, p2
	printf "mTLS connects/s with the plugin     %.1f (%s, %s)\n", g, g1, g2
	printf "plugin overhead                     %.1f%%\n", 100 * (p - g) / p
}'
