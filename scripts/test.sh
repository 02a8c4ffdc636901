#!/usr/bin/env bash
# The whole test suite: install what is needed, build with AddressSanitizer and
# UndefinedBehaviorSanitizer and warnings as errors, check the source, run ctest.
#   scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/bootstrap.sh"
"$top/scripts/checksrc.sh"
"$top/scripts/build.sh" build-asan -DCF_SANITIZE=ON -DCF_WERROR=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$top/build-asan"
ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
