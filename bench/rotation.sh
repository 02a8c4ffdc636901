#!/usr/bin/env bash
# bench/rotation: rotate N simulated devices (default 2000) end to end over mutual TLS
# through a real Mosquitto (with the certfleet plugin, as the demo runs it) and certfleetd,
# and measure in the same run that broker's mutual-TLS connect rate (connect + disconnect
# with rotated device certificates), the ceiling of rotations/s since every rotation ends
# with a reconnect (perf-notes.md).
# Prints rotations/s, the baseline, their ratio, and the CPU seconds of certfleetd, the
# broker and the simulator. Results: docs/benchmarks.md.
#   bench/rotation.sh [-n DEVICES] [-b BUILD_DIR] [-k KEEP_DIR]
# The simulated devices keep their key and certificate slots on tmpfs (/dev/shm) when
# there is one: each agent fsyncs every slot change, a real device on its own flash,
# but here all of them in one simulator loop, and at ~2.5 ms per fsync on this disk
# the benchmark would measure the disk, not certfleet.
# CF_BENCH_SIM_WRAP="perf record -e cpu-clock -g -o sim.perf" profiles the simulator.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
devices=2000
build=$top/build
keep=
while getopts "n:b:k:" o; do
	case $o in
	n) devices=$OPTARG ;;
	b) build=$(cd "$OPTARG" && pwd) ;;
	k) keep=$OPTARG ;;
	*) echo "usage: $0 [-n DEVICES] [-b BUILD_DIR] [-k KEEP_DIR]" >&2; exit 2 ;;
	esac
done
[ -x "$build/sim/certfleet-sim" ] || "$top/scripts/build.sh" "$(basename "$build")" >/dev/null
if [ -n "$keep" ]; then rm -rf "$keep"; mkdir -p "$keep"; work=$(cd "$keep" && pwd); else work=$(mktemp -d /tmp/certfleet-bench.XXXXXX); fi
if [ -d /dev/shm ]; then simdir=$(mktemp -d /dev/shm/certfleet-bench-sim.XXXXXX); else simdir=$work/sim; fi
. "$top/scripts/lib/fleet.sh"
trap 'fleet_cleanup; rm -rf "$simdir"; [ -n "$keep" ] || rm -rf "$work"' EXIT
cf() { "$build/cli/certfleet" "$@"; }

fleet_init "$work" "$build" >/dev/null
fleet_broker
fleet_daemon "mqtt_publish_rate = 0" "rotation_resend_interval = 1m"

t0=$(date +%s.%N)
"$build/sim/certfleet-sim" provision --data-dir "$CERTFLEET_DATA_DIR" --state-dir "$simdir" \
	--devices "$devices" --expires-in 10d >/dev/null
t1=$(date +%s.%N)

# The devices connect first; the rotation is timed from `rotate start` to the last crt_ack.
${CF_BENCH_SIM_WRAP:-} "$build/sim/certfleet-sim" run --state-dir "$simdir" --host 127.0.0.1 --port "$fleet_port" \
	--ca-file "$work/device-trust.pem" --until-rotated "$devices" --timeout 10m \
	--summary "$work/summary.json" --progress 2>"$work/sim.log" >"$work/sim.out" &
sim=$!
fleet_pids+=("$sim")
for _ in $(seq 1 1200); do
	if tr '\r' '\n' <"$work/sim.log" | tail -1 | grep -q "connected $devices/\|connected=$devices\b"; then break; fi
	kill -0 "$sim" 2>/dev/null || break
	sleep 0.1
done
cpu0_d=$(fleet_cpu "$fleet_daemon_pid"); cpu0_b=$(fleet_cpu "$fleet_broker_pid"); cpu0_s=$(fleet_cpu "$sim")
t2=$(date +%s.%N)
cf rotate start --expiring-within 30d >/dev/null
cpu_s=$cpu0_s; cpu_d=$cpu0_d; cpu_b=$cpu0_b; rss_s=0
while kill -0 "$sim" 2>/dev/null; do
	cpu_s=$(fleet_cpu "$sim" 2>/dev/null || echo "$cpu_s")
	rss_s=$(fleet_rss "$sim" 2>/dev/null || echo "$rss_s")
	cpu_d=$(fleet_cpu "$fleet_daemon_pid"); cpu_b=$(fleet_cpu "$fleet_broker_pid")
	sleep 0.2
done
t3=$(date +%s.%N)
wait "$sim" || { echo "bench: the simulator failed"; tail -5 "$work/sim.log"; cat "$work/sim.out"; exit 1; }
completed=$(cf --output json rotate list --state COMPLETED | grep -c '"state"' || true)

# Baseline, same run, same broker (with the plugin): connect + disconnect by four clients at
# once, each a rotated device with its own identity (the plugin admits a certificate only
# under its thing's client id), the sum of their rates.
base_rate=0
base_pids=()
for dev in $(cd "$simdir" && find . -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | head -4); do
	"$build/bench/bench_mtls_connect" -p "$fleet_port" -a "$work/data/broker-ca.pem" \
		-c "$simdir/$dev/current/cert.pem" -k "$simdir/$dev/current/key.pem" -i "$dev" \
		-n $((devices / 4)) -t 20 -P 1 >"$work/base-$dev.out" &
	base_pids+=($!)
done
wait "${base_pids[@]}"
for out in "$work"/base-*.out; do
	base_rate=$(awk -v a="$base_rate" -v b="$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' "$out")" 'BEGIN { print a + b }')
done

awk -v n="$devices" -v done="$completed" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" \
	-v base="$base_rate" -v d0="$cpu0_d" -v d1="$cpu_d" -v b0="$cpu0_b" -v b1="$cpu_b" \
	-v s0="$cpu0_s" -v s1="$cpu_s" -v rd="$(fleet_rss "$fleet_daemon_pid")" \
	-v rb="$(fleet_rss "$fleet_broker_pid")" -v rs="$rss_s" 'BEGIN {
	prov = t1 - t0; rot = t3 - t2; rate = done / rot
	cd = d1 - d0; cb = b1 - b0; cs = s1 - s0
	printf "devices                      %d\n", n
	printf "provisioned in               %.2f s (%.0f/s)\n", prov, n / prov
	printf "rotations completed          %d/%d in %.2f s\n", done, n, rot
	printf "rotations/s                  %.1f\n", rate
	printf "broker mTLS connects/s       %.1f (same run, same broker and plugin, 4 clients)\n", base
	printf "ratio                        %.0f%% of the broker connect rate\n", 100 * rate / base
	printf "CPU during rotation          certfleetd %.2f s, mosquitto %.2f s, certfleet-sim %.2f s\n", cd, cb, cs
	printf "CPU per rotation             certfleetd %.2f ms, mosquitto %.2f ms, certfleet-sim %.2f ms\n", 1000 * cd / done, 1000 * cb / done, 1000 * cs / done
	printf "peak RSS                     certfleetd %d MiB, mosquitto %d MiB, certfleet-sim %d MiB\n", rd, rb, rs
}'
