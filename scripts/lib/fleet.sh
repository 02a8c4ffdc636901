# Shell helpers shared by scripts/demo.sh, bench/rotation.sh and bench/broker.sh: a loopback
# broker with mutual TLS, certfleetd, and cleanup by PID. Source it; it defines functions only.
#   fleet_init WORK BIN      data dir WORK/data (CERTFLEET_DATA_DIR), quick-start CA,
#                            certfleetd's identity
#   fleet_broker             Mosquitto on a free 127.0.0.1 port ($fleet_port) with the
#                            certfleet broker plugin on the registry (docs/broker.md)
#   fleet_broker --no-plugin the same listener without it, Mosquitto's ACL file instead
#                            (a baseline for benchmarks)
#   fleet_daemon             certfleetd, logging to WORK/certfleetd.log
#   fleet_cleanup            stop everything started (by PID)
# Needs: openssl, mosquitto, and the certfleet build in BIN (with broker/certfleet_broker.so).

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
# certificates must chain to the certfleet root (cafile = intermediate + root). Writes
# WORK/mosquitto.conf and logs to WORK/mosquitto.log.
fleet_broker() {
	local w=$fleet_work plugin=1 auth
	case ${1-} in
	--no-plugin) plugin=0 ;;
	"") ;;
	*) echo "usage: fleet_broker [--no-plugin]" >&2; return 2 ;;
	esac
	if [ "$plugin" -eq 1 ] && [ ! -f "$fleet_bin/broker/certfleet_broker.so" ]; then
		echo "fleet: no $fleet_bin/broker/certfleet_broker.so (build it first)" >&2
		return 1
	fi
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
	# protocol.md lets certfleetd trust the client id in a topic only because the broker
	# keeps each device to P/<its client id>/... . The plugin does: a client connects only
	# with an ACTIVE certificate of the thing its client id names, and uses only the topics
	# of its certificate's policies (certfleet-device, certfleet-service). Mosquitto skips
	# a plugin's basic-auth check when the identity is the user name, hence false there.
	# Without the plugin, Mosquitto's own ACL does the topic part, with the certificate's
	# CN (the thing name) as the user name; any valid certificate connects.
	if [ "$plugin" -eq 1 ]; then
		auth="use_identity_as_username false
plugin $fleet_bin/broker/certfleet_broker.so
plugin_opt_registry $CERTFLEET_DATA_DIR/registry.db"
	else
		cat >"$w/acl" <<EOA
user certfleetd
topic readwrite management/topic/#
pattern readwrite management/topic/%u/#
EOA
		auth="use_identity_as_username true
acl_file $w/acl"
	fi
	cat >"$w/mosquitto.conf" <<EOC
listener $fleet_port 127.0.0.1
cafile $w/client-ca.pem
certfile $w/broker.pem
keyfile $w/broker.key
tls_version tlsv1.2
require_certificate true
$auth
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
