#!/usr/bin/env bash
# Banned calls (curl's list, trimmed) and upward includes between modules.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src cli bench tests -name '*.[ch]')
banned='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|atol|gets|rand|srand|system)[[:space:]]*\('
if grep -nE "$banned" $files; then
	echo "checksrc: banned call above (use snprintf, memcpy, strtol, RAND_bytes...)" >&2
	status=1
fi
# A module includes only modules below it: util < pki < store < authority < rotation < audit < events < mqtt < daemon.
order=(util pki store authority rotation audit events mqtt daemon)
for i in "${!order[@]}"; do
	mod=${order[$i]}
	for up in "${order[@]:$((i + 1))}"; do
		if grep -nE "#include \"$up/" src/$mod/*.[ch] 2>/dev/null; then
			echo "checksrc: src/$mod includes the higher module $up" >&2
			status=1
		fi
	done
done
if grep -nE '#include "[a-z]+/[a-z]+_int\.h"' cli/*.c bench/*.c 2>/dev/null; then
	echo "checksrc: cli/ and bench/ use module headers, never _int.h" >&2
	status=1
fi
exit $status
