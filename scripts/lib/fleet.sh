# Shell helpers shared by scripts/demo.sh and bench/rotation.sh: a loopback broker with
# mutual TLS, certfleetd, and cleanup by PID. Source it; it defines functions only.
#   fleet_init WORK BIN      data dir WORK/data (CERTFLEET_DATA_DIR), quick-start CA,
#                            certfleetd's identity
#   fleet_broker             Mosquitto on a free 127.0.0.1 port ($fleet_port)
#   fleet_daemon             certfleetd, logging to WORK/certfleetd.log
#   fleet_cleanup            stop everything started (by PID)
# Needs: openssl, mosquitto, and the certfleet build in BIN.

fleet_pids=()

fleet_cleanup() {
	local p
	for p in "${fleet_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${fleet_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	fleet_pids=()
}

# A free loopback port: nothing answers on it.
fleet_free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "fleet: no free port" >&2
	return 1
}

# fleet_wait FILE SECONDS TEXT: wait until FILE contains TEXT.
fleet_wait() {
	local i
	for i in $(seq 1 $(($2 * 10))); do
		if grep -q -- "$3" "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "fleet: timed out waiting for '$3' in $1" >&2
	tail -20 "$1" >&2 || true
	return 1
}

fleet_init() {
	fleet_work=$1
	fleet_bin=$2
	export CERTFLEET_DATA_DIR=$fleet_work/data
	"$fleet_bin/cli/certfleet" init --quickstart 2>/dev/null
	"$fleet_bin/cli/certfleet" service create certfleetd
}

# The broker's server certificate comes from a separate CA made with openssl; client
# certificates must chain to the certfleet root (cafile = intermediate + root).
fleet_broker() {
	local w=$fleet_work
	fleet_port=$(fleet_free_port)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-keyout "$w/broker-ca.key" -out "$w/data/broker-ca.pem" -subj "/CN=certfleet demo broker CA" 2>/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$w/broker.key" -out "$w/broker.csr" -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$w/broker.ext"
	openssl x509 -req -in "$w/broker.csr" -CA "$w/data/broker-ca.pem" -CAkey "$w/broker-ca.key" \
		-CAcreateserial -days 30 -extfile "$w/broker.ext" -out "$w/broker.pem" 2>/dev/null
	chmod 600 "$w/broker.key" "$w/broker-ca.key"
	"$fleet_bin/cli/certfleet" ca pem default --chain >"$w/client-ca.pem"
	cat "$w/data/broker-ca.pem" "$w/data/offline-root/root.pem" >"$w/device-trust.pem"
	# Until the certfleet broker plugin (docs/broker.md, issue 4) enforces topics per
	# certificate, Mosquitto's own ACL keeps each device to P/<its CN>/...: protocol.md
	# lets certfleetd trust the client id in a topic only because the broker does.
	cat >"$w/acl" <<EOA
user certfleetd
topic readwrite management/topic/#
pattern readwrite management/topic/%u/#
EOA
	cat >"$w/mosquitto.conf" <<EOC
listener $fleet_port 127.0.0.1
cafile $w/client-ca.pem
certfile $w/broker.pem
keyfile $w/broker.key
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
acl_file $w/acl
set_tcp_nodelay true
persistence true
persistence_location $w/
max_queued_messages 10000
log_dest file $w/mosquitto.log
user $(id -un)
EOC
	mosquitto -c "$w/mosquitto.conf" 2>>"$w/mosquitto.log" &
	fleet_broker_pid=$!
	fleet_pids+=("$fleet_broker_pid")
	for _ in $(seq 1 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$fleet_port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "fleet: mosquitto did not start" >&2
	return 1
}

# fleet_daemon [CONF_LINE...]: append the lines to certfleet.conf, then start certfleetd.
fleet_daemon() {
	local line
	echo "mqtt_port = $fleet_port" >>"$CERTFLEET_DATA_DIR/certfleet.conf"
	for line in "$@"; do echo "$line" >>"$CERTFLEET_DATA_DIR/certfleet.conf"; done
	"$fleet_bin/src/daemon/certfleetd" --check-config >/dev/null
	"$fleet_bin/src/daemon/certfleetd" --log-file "$fleet_work/certfleetd.log" &
	fleet_daemon_pid=$!
	fleet_pids+=("$fleet_daemon_pid")
	fleet_wait "$fleet_work/certfleetd.log" 15 "event=mqtt_connected"
}

# fleet_cpu PID: user+system CPU seconds of a running process.
fleet_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# fleet_rss PID: peak resident set size of a running process, in MiB.
fleet_rss() {
	awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}
