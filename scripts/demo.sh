#!/usr/bin/env bash
# The certfleet demo, on this machine only (127.0.0.1): a quick-start CA, Mosquitto
# with TLS requiring client certificates and the certfleet broker plugin (only ACTIVE
# certificates connect, each client to its own topics), certfleetd, and certfleet-sim
# with N devices (default 200) whose certificates expire in 10 days; `certfleet rotate
# start --expiring-within 30d` rotates them all over MQTT, and the registry, the broker
# and openssl show the result.
#   scripts/demo.sh [--devices N] [--keep DIR] [--build DIR]
# --keep DIR keeps the data dir, logs and broker config in DIR (default: a temp dir,
# removed at the end); --build DIR builds and uses that build dir of the source tree
# (default build).
# scripts/demo-pki.sh walks the CA and registry commands.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
devices=200
keep=
build=build
while [ $# -gt 0 ]; do
	case $1 in
	--devices) devices=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--devices N] [--keep DIR] [--build DIR]" >&2; exit 2 ;;
	esac
done

"$top/scripts/bootstrap.sh"
"$top/scripts/build.sh" "$build" >/dev/null
bin=$top/$build
cf() { "$bin/cli/certfleet" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -n "$keep" ]; then
	rm -rf "$keep"
	mkdir -p "$keep"
	work=$(cd "$keep" && pwd)
else
	work=$(mktemp -d /tmp/certfleet-demo.XXXXXX)
fi
. "$top/scripts/lib/fleet.sh"
cleanup() {
	fleet_cleanup
	if [ -z "$keep" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

step "1. A data dir with an offline root CA, a default intermediate, and certfleetd's identity"
fleet_init "$work" "$bin"
cf ca list

step "2. Mosquitto on 127.0.0.1: TLS 1.2+, client certificates required, checked by the plugin"
fleet_broker "" # with the plugin (--no-plugin: the ACL-file baseline)
grep -v '^#' "$work/mosquitto.conf" | sed -n '1,9p'

step "3. certfleetd connects as the service principal"
fleet_daemon "rotation_resend_interval = 15s"
grep "event=mqtt_connected" "$work/certfleetd.log"

step "4. $devices simulated devices, their certificates expiring in 10 days"
time "$bin/sim/certfleet-sim" provision --data-dir "$CERTFLEET_DATA_DIR" --state-dir "$work/sim" \
	--devices "$devices" --expires-in 10d
cf cert list --limit 3

step "5. The devices connect (each with its own key and certificate, mutual TLS)"
"$bin/sim/certfleet-sim" run --state-dir "$work/sim" --host 127.0.0.1 --port "$fleet_port" \
	--ca-file "$work/device-trust.pem" --until-rotated "$devices" --timeout 5m \
	--summary "$work/sim-summary.json" --progress 2>"$work/sim.log" >"$work/sim.out" &
sim=$!
fleet_pids+=("$sim")
sleep 3

step "6. certfleet rotate start --expiring-within 30d"
t_start=$(date +%s.%N)
cf rotate start --expiring-within 30d | tail -3
cf rotate list --limit 5

step "7. Rotation: csr_req -> CSR -> new certificate -> reconnect -> crt_ack"
last=
while kill -0 "$sim" 2>/dev/null; do
	line=$(tr '\r' '\n' <"$work/sim.log" | grep -v '^$' | tail -1)
	if [ "$line" != "$last" ]; then printf '%s\n' "$line"; last=$line; fi
	sleep 1
done
wait "$sim" && simrc=0 || simrc=$?
t_end=$(date +%s.%N)
cat "$work/sim.out"
[ "$simrc" -eq 0 ] || { echo "demo: the simulator failed (exit $simrc)"; tail -20 "$work/sim.log"; exit 1; }

step "8. The registry after the rotation"
cf rotate list --state COMPLETED --limit 3
completed=$(cf --output json rotate list --state COMPLETED | grep -c '"state"' || true)
inactive=$(cf --output json cert list --status INACTIVE --deleted | grep -c '"thing": "sim-' || true)
active=$(cf --output json cert list --status ACTIVE | grep -c '"thing": "sim-' || true)
printf '\n%-44s %s\n' "rotated (rotations COMPLETED)" "$completed/$devices"
printf '%-44s %s\n' "rotation time, rotate start to last crt_ack" "$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f s", b - a }')"
printf '%-44s %s\n' "old certificates INACTIVE (and deleted)" "$inactive/$devices"
printf '%-44s %s\n' "new certificates ACTIVE" "$active/$devices"
# The broker's side: Mosquitto logs a connection only once the plugin admitted it; the
# plugin logs every refused connect and every denied topic (none in a normal rotation).
admitted=$(grep -c 'New client connected' "$work/mosquitto.log" || true)
refused=$(grep -c 'certfleet: refused' "$work/mosquitto.log" || true)
denied=$(grep -c 'certfleet: denied' "$work/mosquitto.log" || true)
printf '%-44s %s\n' "broker: connects admitted by the plugin" "$admitted"
printf '%-44s %s\n' "broker: connects refused by the plugin" "$refused"
printf '%-44s %s\n' "broker: topics denied by the plugin" "$denied"
[ "$completed" -eq "$devices" ] && [ "$inactive" -eq "$devices" ] && [ "$active" -eq "$devices" ] &&
	[ "$denied" -eq 0 ]

step "9. A new certificate, checked by openssl"
thing=$(cd "$work/sim" && set -- */ && echo "${1%/}")
cert=$work/sim/$thing/current/cert.pem
openssl x509 -in "$cert" -noout -subject -dates
openssl verify -CAfile "$work/data/offline-root/root.pem" -untrusted "$work/client-ca.pem" "$cert"
cf events verify

step "10. The broker closes the door: $thing deactivated while connected"
# The device's rotated identity, connected as it (mosquitto_sub on its own csr_req topic),
# then deactivated: the plugin disconnects the session and refuses the reconnection.
id=$(openssl x509 -in "$cert" -outform DER | sha256sum | cut -d' ' -f1)
seen=$(grep -c "as $thing (" "$work/mosquitto.log" || true)
mosquitto_sub -h 127.0.0.1 -p "$fleet_port" --cafile "$work/data/broker-ca.pem" \
	--cert "$cert" --key "$work/sim/$thing/current/key.pem" -i "$thing" \
	-t "management/topic/$thing/csr_req" -q 1 >/dev/null 2>&1 &
probe=$!
fleet_pids+=("$probe")
for _ in $(seq 1 100); do # until the broker admitted this connection (the sim's came before)
	[ "$(grep -c "as $thing (" "$work/mosquitto.log" || true)" -gt "$seen" ] && break
	sleep 0.1
done
cf cert deactivate "$id" >/dev/null
t_off=$(date +%s.%N)
fleet_wait "$work/mosquitto.log" 10 "disconnecting client_id=$thing"
printf '%-44s %s
' "deactivate -> disconnected" \
	"$(awk -v a="$t_off" -v b="$(date +%s.%N)" 'BEGIN { printf "within %.0f ms", 1000 * (b - a) }')"
fleet_wait "$work/mosquitto.log" 10 "refused client_id=$thing"
grep -E "certfleet: (disconnecting|refused) client_id=$thing" "$work/mosquitto.log" | sed -n '1,2p'
kill "$probe" 2>/dev/null || true

printf '\nLogs: %s/certfleetd.log, %s/sim.log, %s/mosquitto.log%s\n' "$work" "$work" "$work" \
	"$([ -n "$keep" ] && echo '' || echo ' (removed at exit; --keep DIR keeps them)')"
