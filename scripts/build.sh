#!/usr/bin/env bash
# Configure and build into DIR (default build/). Extra arguments go to cmake.
#   scripts/build.sh build-asan -DCF_SANITIZE=ON
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
shift || true
# Sanitizers only when asked: a cache left by an earlier -DCF_SANITIZE=ON must not slow the demo.
cmake -S "$top" -B "$top/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCF_SANITIZE=OFF "$@" >/dev/null
cmake --build "$top/$dir" -j"$(nproc)"
