# cli_lib.sh - sourced by the shell tests of the bgsnap command: $B (the
# tool), $GEN (the format generator, files written through the real
# encoder), a scratch directory $T removed at exit, fail() counting into
# $fails, and expect().  Skips (77) when either program is not built.
BUILD="${BUILD:-build}"
B="$BUILD/bgsnap"
GEN="$BUILD/tests/unit/t_format_gen"
[ -x "$B" ] && [ -x "$GEN" ] || { echo "skip: $B or $GEN not built"; exit 77; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect CODE CMD...: runs CMD (at most 20 s), checks its exit code; output
# in $T/out, $T/err
expect() {
	local want=$1; shift
	timeout 20 "$@" >"$T/out" 2>"$T/err"
	local got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, expected $want; stderr: $(head -c 300 "$T/err")"
}
