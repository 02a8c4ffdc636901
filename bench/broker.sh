#!/usr/bin/env bash
# bench/broker: the certfleet broker plugin's cost. Two brokers in the same run with the same
# TLS listener, one with certfleet_broker.so and one without (Mosquitto's ACL file and the
# certificate's CN as user name: fleet_broker --no-plugin). Against each, alternating so that
# both see the same machine:
#   - mutual-TLS connects/s (bench_mtls_connect, one device certificate);
#   - QoS 1 publish-to-receive latency, p50 and p99, both ways between a service principal
#     and a device on the protocol's topics (bench_broker_rtt), with the brokers pinned to
#     CPU 0 and the clients on CPU 0 or on CPU 1;
# and, with the plugin only, the time from `certfleet cert deactivate` to the device's
# disconnect, over TRIALS trials (bench_broker_kick). Prints the figures and the ratios.
# Results: docs/benchmarks.md. Everything runs on 127.0.0.1; every loop is bounded in count
# and in time. About two minutes with the defaults on a 2-core machine.
#   bench/broker.sh [-n CONNECTS] [-m MESSAGES] [-t TRIALS] [-r REFRESH_MS] [-b BUILD_DIR]
#                   [-k KEEP_DIR]
#     -n  connects per run (3000), -m messages each way per run (2000), -t deactivation
#     trials (100), -r the plugin's plugin_opt_refresh_ms (250), -b the build (build/),
#     -k keep the registry, configs and logs in KEEP_DIR.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
count=3000
messages=2000
trials=100
refresh=250
build=$top/build
keep=
usage="usage: $0 [-n CONNECTS] [-m MESSAGES] [-t TRIALS] [-r REFRESH_MS] [-b BUILD_DIR] [-k KEEP_DIR]"
while getopts "n:m:t:r:b:k:" o; do
	case $o in
	n) count=$OPTARG ;;
	m) messages=$OPTARG ;;
	t) trials=$OPTARG ;;
	r) refresh=$OPTARG ;;
	b) build=$(cd "$OPTARG" && pwd) ;;
	k) keep=$OPTARG ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
if [ ! -f "$build/broker/certfleet_broker.so" ] || [ ! -x "$build/bench/bench_broker_kick" ]; then
	"$top/scripts/build.sh" "$(basename "$build")" >/dev/null
fi
if [ -n "$keep" ]; then rm -rf "$keep"; mkdir -p "$keep"; work=$(cd "$keep" && pwd); else work=$(mktemp -d /tmp/certfleet-bench-broker.XXXXXX); fi
. "$top/scripts/lib/fleet.sh"
trap 'fleet_cleanup; [ -n "$keep" ] || rm -rf "$work"' EXIT
cf() { "$build/cli/certfleet" "$@"; }

fleet_init "$work" "$build" >/dev/null # also the service principal certfleetd
# Devices: a key and CSR by openssl, the certificate by certfleet, the chain for TLS.
# bench-dev for connects and round trips, bench-kick for the deactivation trials.
device() {
	cf thing create "$1" >/dev/null
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/$1.key" \
		-out "$work/$1.csr" -subj "/CN=$1" 2>/dev/null
	cf cert issue --thing "$1" --csr "$work/$1.csr" --out "$work/$1.pem" >/dev/null
	cat "$work/$1.pem" >"$work/$1-chain.pem"
	cf ca pem default >>"$work/$1-chain.pem"
}
device bench-dev
device bench-kick
kick_id=$(openssl x509 -in "$work/bench-kick.pem" -outform DER | sha256sum | cut -d' ' -f1)
fleet_broker --no-plugin # the plain broker: Mosquitto's ACL file, the CN as user name
plain_port=$fleet_port

# The same listener with the plugin instead of the ACL.
plugin_port=$(fleet_free_port)
sed -e "s/^listener .*/listener $plugin_port 127.0.0.1/" -e '/^use_identity_as_username/d' \
	-e '/^acl_file/d' -e "s|^log_dest .*|log_dest file $work/mosquitto-plugin.log|" \
	-e "s|^persistence_location .*|persistence_location $work/plugin/|" "$work/mosquitto.conf" >"$work/plugin.conf"
mkdir -p "$work/plugin"
cat >>"$work/plugin.conf" <<EOC
use_identity_as_username false
plugin $build/broker/certfleet_broker.so
plugin_opt_registry $CERTFLEET_DATA_DIR/registry.db
plugin_opt_refresh_ms $refresh
EOC
mosquitto -c "$work/plugin.conf" 2>>"$work/mosquitto-plugin.log" &
plugin_pid=$!
fleet_pids+=("$plugin_pid")
for _ in $(seq 1 50); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$plugin_port") 2>/dev/null; then break; fi
	if ! kill -0 "$plugin_pid" 2>/dev/null; then
		echo "bench/broker.sh: the broker with the plugin did not start:" >&2
		tail -5 "$work/mosquitto-plugin.log" >&2
		exit 1
	fi
	sleep 0.1
done

ca=$work/data/broker-ca.pem
connects() {
	"$build/bench/bench_mtls_connect" -p "$1" -a "$ca" -c "$work/bench-dev-chain.pem" \
		-k "$work/bench-dev.key" -i bench-dev -n "$count" -t 30 -P 1 | sed -n 's/.*rate=\([0-9.]*\).*/\1/p'
}
# rtt LAYOUT CPU BROKER PORT: one bench_broker_rtt run on CPU; "LAYOUT BROKER DIR P50 P99" lines
# into rtt.tsv, its own output into rtt.log.
rtt() {
	taskset -c "$2" "$build/bench/bench_broker_rtt" -p "$4" -a "$ca" \
		-c "$CERTFLEET_DATA_DIR/service/certfleetd.pem" -k "$CERTFLEET_DATA_DIR/service/certfleetd.key" \
		-i certfleetd -C "$work/bench-dev-chain.pem" -K "$work/bench-dev.key" -I bench-dev \
		-n "$messages" -t 20 | tee -a "$work/rtt.log" |
		awk -v l="$1" -v b="$3" '{
			for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			print l, b, v["dir"], v["p50_us"], v["p99_us"]
		}' >>"$work/rtt.tsv"
}
# Alternate, so that both see the same machine.
p1=$(connects "$plain_port"); g1=$(connects "$plugin_port")
p2=$(connects "$plain_port"); g2=$(connects "$plugin_port")
awk -v p1="$p1" -v p2="$p2" -v g1="$g1" -v g2="$g2" 'BEGIN {
	p = (p1 + p2) / 2; g = (g1 + g2) / 2
	printf "mTLS connects/s without the plugin  %.1f (%s, %s)\n", p, p1, p2
	printf "mTLS connects/s with the plugin     %.1f (%s, %s)\n", g, g1, g2
	printf "plugin overhead                     %.1f%%\n", 100 * (p - g) / p
}'

# Round trips. Unpinned, the figures jump between two values from run to run (here ~17 or
# ~80 µs): whether the broker and the clients share a CPU, or each message costs two
# cross-CPU wake-ups, which are slow in a VM. So both brokers run on CPU 0, and the clients
# on CPU 0 too ("one CPU": the work on the path) or on CPU 1 ("two CPUs": with the
# wake-ups). Five alternations per layout; the medians are printed (each run: rtt.log).
rounds=5
ncpu=$(nproc)
layouts="one"
[ "$ncpu" -lt 2 ] || layouts="one two"
taskset -pc 0 "$fleet_broker_pid" >/dev/null
taskset -pc 0 "$plugin_pid" >/dev/null
for layout in $layouts; do
	cpu=0
	[ "$layout" = one ] || cpu=1
	for _ in $(seq 1 $rounds); do
		rtt "$layout" "$cpu" plain "$plain_port"
		rtt "$layout" "$cpu" plugin "$plugin_port"
	done
done
taskset -pc "0-$((ncpu - 1))" "$fleet_broker_pid" >/dev/null
taskset -pc "0-$((ncpu - 1))" "$plugin_pid" >/dev/null
awk -v n="$messages" -v r="$rounds" '
function median(key,   k, m, a, i, j, t) {
	m = split(vals[key], a, " ")
	for (i = 2; i <= m; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return a[int((m + 1) / 2)]
}
{ vals[$1 " " $2 " " $3 " p50"] = vals[$1 " " $2 " " $3 " p50"] " " $4
  vals[$1 " " $2 " " $3 " p99"] = vals[$1 " " $2 " " $3 " p99"] " " $5 }
END {
	printf "QoS 1 publish -> receive, µs, median of %d runs of %d messages each way:\n", r, n
	printf "                                    without plugin     with plugin      with / without\n"
	printf "                                      p50     p99      p50     p99       p50    p99\n"
	split("one two", ls, " "); split("server_to_device device_to_server", ds, " ")
	name["one"] = "one CPU "; name["two"] = "two CPUs"
	name["server_to_device"] = "server -> device"; name["device_to_server"] = "device -> server"
	for (i = 1; i <= 2; i++) for (j = 1; j <= 2; j++) {
		k = ls[i] " "; if (!((k "plain " ds[j] " p50") in vals)) continue
		a = median(k "plain " ds[j] " p50"); b = median(k "plain " ds[j] " p99")
		c = median(k "plugin " ds[j] " p50"); d = median(k "plugin " ds[j] " p99")
		printf "  %s  %s    %7.1f %7.1f  %7.1f %7.1f     %5.2f  %5.2f\n", name[ls[i]], name[ds[j]], a, b, c, d, c / a, d / b
	}
}' "$work/rtt.tsv"
# Deactivation to disconnect, with the plugin only. The plugin refreshes on Mosquitto's tick,
# and an idle Mosquitto 2.0.11 ticks when epoll_wait() returns: on traffic, or 100 ms after the
# last event. With one client connected, refresh_ms 250 is a refresh every 300 ms, so the
# deactivations are spread over refresh_ms rounded up to 100 ms, the period seen here.
period=$(((refresh + 99) / 100 * 100))
"$build/bench/bench_broker_kick" -p "$plugin_port" -a "$ca" -c "$work/bench-kick-chain.pem" \
	-k "$work/bench-kick.key" -i bench-kick -x "$build/cli/certfleet" -e "$kick_id" \
	-n "$trials" -t 300 -s "$period" >"$work/kick.log" || echo "bench_broker_kick: exit $?" >&2
[ -s "$work/kick.log" ] || exit 1
awk -v r="$refresh" -v p="$period" '{
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "cert deactivate -> disconnect, refresh_ms %d (spread over %d ms), %d trials (%d timeouts), ms:\n", r, p, v["trials"], v["timeouts"]
	printf "  from the CLI start  p50 %s  p99 %s  max %s\n", v["from_start_p50_ms"], v["from_start_p99_ms"], v["from_start_max_ms"]
	printf "  from the CLI exit   p50 %s  p99 %s  max %s  (before the exit: %d)\n", v["from_exit_p50_ms"], v["from_exit_p99_ms"], v["from_exit_max_ms"], v["early"]
	printf "  the CLI itself      p50 %s\n", v["cli_p50_ms"]
	printf "  cert activate -> accepted reconnect  p50 %s  max %s  (%d connects refused)\n", v["reconnect_p50_ms"], v["reconnect_max_ms"], v["refused"]
}' "$work/kick.log"
