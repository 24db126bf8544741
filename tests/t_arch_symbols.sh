#!/usr/bin/env bash
# t_arch_symbols.sh - the library exports exactly its public interface:
#  - libbgsnap.a defines no global symbol but bgsnap_ names (a host's own
#    now_ns or crc32c must not clash with the library's internals);
#  - every function bgsnap.h declares is defined there, listed in the
#    linker map (src/libbgsnap.map) and exported by libbgsnap.so, and the
#    map lists nothing the header does not declare.
# timeout: 60
set -u
BUILD="${BUILD:-build}"
A="$BUILD/libbgsnap.a"
SO="$BUILD/libbgsnap.so"
command -v nm >/dev/null || { echo "skip: nm (binutils) is not installed"; exit 77; }
[ -f "$A" ] && [ -f "$SO" ] || { echo "skip: $A or $SO not built"; exit 77; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

nm -g --defined-only "$A" >"$T/nm" 2>"$T/err" || { echo "FAIL: nm $A: $(cat "$T/err")"; exit 1; }
# Symbol lines are "ADDRESS TYPE NAME"; member headers and blank lines are not.
awk 'NF == 3 { print $3 }' "$T/nm" | sort -u >"$T/a"
grep -v '^bgsnap_' "$T/a" >"$T/foreign"
if [ -s "$T/foreign" ]; then
	fail "$A defines $(wc -l <"$T/foreign") global symbols without the bgsnap_ prefix:" \
		"$(head -n 20 "$T/foreign" | tr '\n' ' ')"
fi

# Declarations start a line with their return type; comments start with ' *'.
sed -nE 's/^[a-z][a-z0-9_ ]*[ *](bgsnap_[a-z0-9_]+)\(.*/\1/p' include/bgsnap.h | sort -u >"$T/h"
[ -s "$T/h" ] || { echo "FAIL: found no function declaration in include/bgsnap.h"; exit 1; }
sed -nE 's/^[[:space:]]*(bgsnap_[a-z0-9_]+);.*/\1/p' src/libbgsnap.map | sort -u >"$T/map"
nm -D --defined-only "$SO" | awk 'NF == 3 { sub(/@.*/, "", $3); print $3 }' | grep '^bgsnap_' | sort -u >"$T/so"

missing() { # WHAT FILE: header functions absent from FILE
	local m
	m=$(comm -23 "$T/h" "$2" | tr '\n' ' ')
	[ -z "$m" ] || fail "declared in bgsnap.h but not $1: $m"
}
missing "defined in $A" "$T/a"
missing "listed in src/libbgsnap.map" "$T/map"
missing "exported by $SO" "$T/so"
extra=$(comm -13 "$T/h" "$T/map" | tr '\n' ' ')
[ -z "$extra" ] || fail "src/libbgsnap.map lists functions bgsnap.h does not declare: $extra"
extra=$(comm -13 "$T/h" "$T/so" | tr '\n' ' ')
[ -z "$extra" ] || fail "$SO exports functions bgsnap.h does not declare: $extra"

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "ok: $(wc -l <"$T/h") public functions, nothing else global in $A"
