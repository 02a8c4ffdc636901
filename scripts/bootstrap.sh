#!/usr/bin/env bash
# Install the Debian 12 packages certfleet needs to build, test and run the demo.
# Idempotent: apt-get runs only when a package is missing. Run as root.
set -euo pipefail

packages=(
	build-essential cmake pkg-config git ca-certificates
	openssl libssl-dev
	libsqlite3-dev sqlite3
	libjansson-dev
	libcmocka-dev
	libmosquitto-dev mosquitto mosquitto-clients mosquitto-dev
	libcurl4-openssl-dev
	libmicrohttpd-dev
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bootstrap: missing packages: ${missing[*]}; run as root or install them" >&2
	exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
