#!/usr/bin/env bash
# run.sh - runs the bgsnap test suite: every built program $BUILD/tests/t_*
# (from tests/t_*.c), $BUILD/tests/unit/t_* (the library's unit tests,
# tests/unit/t_*.c) and every tests/t_*.sh, one at a time (the machine has 2 cores and the
# engines are timing-sensitive), each under `timeout`.
#
# Exit status of a test: 0 pass, 77 skip (the last line of its output says
# why), anything else fail (the tail of its output is shown).  The last line
# printed is always "N passed, N failed, N skipped"; the script exits 1 if any
# test failed (or none ran at all), else 0.
#
# Usage: tests/run.sh [-l] [PATTERN...]
#   PATTERN        run only tests whose name (t_foo, without .sh) matches one
#                  of the shell glob patterns, e.g. 't_err_*' or '*stream*'
#   -l             list the selected tests and exit
# Environment:
#   BUILD=build    build directory holding tests/t_* (exported to .sh tests)
#   TEST_TIMEOUT=300  default per-test timeout in seconds.  A test overrides
#                  it with a line "timeout: N" among its first 30 lines (in a
#                  comment of the .sh or of the test's .c).
#   TEST_TIMEOUT_SCALE=N  multiply every timeout (sanitizer builds are slower).
#   TESTS_TSAN=1   run only the concurrency tests: names matching
#                  TSAN_PATTERNS below, or whose source has a "tags:" line
#                  containing "concurrency".
#   TESTS_EXCLUDE='pat ...'  skip tests matching these patterns (reported as
#                  skipped, with the reason "excluded").
#   TESTS_VERBOSE=1  show the full output of every test.
#   BGSNAP_TEST_REDUCED=1  the long matrix tests (t_consistency,
#                  t_compress_consistency, t_compress_threads_consistency)
#                  run their most racing corner only: for the sanitizer
#                  builds, several times slower, which the plain run backs.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root" || exit 1
export BUILD="${BUILD:-build}"
TEST_TIMEOUT="${TEST_TIMEOUT:-300}"

# Tests that exercise threads racing each other: what ThreadSanitizer is for.
TSAN_PATTERNS='t_consistency* t_err_cancel* t_fault_cancel* t_engine_stream* t_engine_concurrency* t_copybuf*'

list_only=0
patterns=()
for a in "$@"; do
	case "$a" in
	-l) list_only=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) patterns+=("$a") ;;
	esac
done

matches_any() { # NAME PATTERN...
	local n=$1 p; shift
	for p in "$@"; do
		# shellcheck disable=SC2053
		[[ $n == $p ]] && return 0
	done
	return 1
}

source_of() { # NAME -> the file holding its comments (source or script)
	if [[ -f tests/$1.sh ]]; then echo "tests/$1.sh"
	elif [[ -f tests/$1.c ]]; then echo "tests/$1.c"
	elif [[ -f tests/unit/$1.c ]]; then echo "tests/unit/$1.c"
	fi
}

tag_line() { # NAME KEY -> value of "KEY: value" in the first 30 lines
	local src
	src=$(source_of "$1")
	[[ -n $src ]] || return 0
	head -n 30 "$src" | grep -m 1 -E "(^|[[:space:]#*/])$2:" |
		sed -e "s/.*$2:[[:space:]]*//" -e 's/[[:space:]]*\*\/.*//' -e 's/[[:space:]]*$//'
}

# Collect tests: compiled programs first, then scripts, sorted by name.
declare -A cmd=()
for f in "$BUILD"/tests/t_* "$BUILD"/tests/unit/t_*; do
	[[ -f $f && -x $f ]] || continue
	case "$f" in *.d|*.o) continue ;; esac
	# A binary left by a test that no longer exists (another branch, a
	# rename) is not part of this suite.
	src=${f#"$BUILD"/}.c
	[[ -f $src ]] || continue
	cmd[$(basename "$f")]=$f
done
for f in tests/t_*.sh; do
	[[ -f $f ]] || continue
	n=$(basename "$f" .sh)
	cmd[$n]="bash $f"
done
# A C test whose binary is missing is a build problem: report it as a failure
# rather than silently running fewer tests.
for f in tests/t_*.c tests/unit/t_*.c; do
	[[ -f $f ]] || continue
	n=$(basename "$f" .c)
	[[ -n ${cmd[$n]:-} ]] || cmd[$n]="__missing__"
done

mapfile -t names < <(printf '%s\n' "${!cmd[@]}" | sort)

selected=()
for n in "${names[@]}"; do
	[[ -n $n ]] || continue
	if ((${#patterns[@]})) && ! matches_any "$n" "${patterns[@]}"; then continue; fi
	if [[ ${TESTS_TSAN:-0} == 1 ]]; then
		# shellcheck disable=SC2086
		if ! matches_any "$n" $TSAN_PATTERNS && [[ $(tag_line "$n" tags) != *concurrency* ]]; then
			continue
		fi
	fi
	selected+=("$n")
done

if ((list_only)); then
	printf '%s\n' "${selected[@]}"
	exit 0
fi

pass=0 fail=0 skip=0
failed_names=()
tmpout=$(mktemp)
trap 'rm -f "$tmpout"' EXIT

for n in "${selected[@]}"; do
	t=$(tag_line "$n" timeout)
	[[ $t =~ ^[0-9]+$ ]] || t=$TEST_TIMEOUT
	t=$((t * ${TEST_TIMEOUT_SCALE:-1}))
	if [[ -n ${TESTS_EXCLUDE:-} ]]; then
		# shellcheck disable=SC2086
		if matches_any "$n" $TESTS_EXCLUDE; then
			echo "SKIP $n: excluded by TESTS_EXCLUDE"
			skip=$((skip + 1))
			continue
		fi
	fi
	if [[ ${cmd[$n]} == __missing__ ]]; then
		echo "FAIL $n: $(source_of "$n") has no built program $BUILD/tests/$n (build failed?)"
		fail=$((fail + 1)); failed_names+=("$n")
		continue
	fi
	start=$(date +%s.%N)
	# --kill-after: a test that ignores SIGTERM (blocked in a fault) still ends.
	# shellcheck disable=SC2086
	# The subshell keeps bash's own "Segmentation fault" notice out of the way:
	# the verdict below says it.
	(timeout --kill-after=10 "$t" ${cmd[$n]} </dev/null >"$tmpout" 2>&1; exit $?) 2>/dev/null
	rc=$?
	secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	if [[ ${TESTS_VERBOSE:-0} == 1 ]]; then sed 's/^/    /' "$tmpout"; fi
	case $rc in
	0)
		echo "PASS $n (${secs}s)"
		pass=$((pass + 1)) ;;
	77)
		reason=$(grep -v '^[[:space:]]*$' "$tmpout" | tail -n 1)
		echo "SKIP $n: ${reason:-no reason given}"
		skip=$((skip + 1)) ;;
	*)
		if ((rc == 124)); then
			why="timed out after ${t}s"
		elif ((rc == 137)); then
			why="killed by SIGKILL (ignored the timeout of ${t}s, or out of memory)"
		elif ((rc > 128)); then
			why="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))"
		else
			why="exit status $rc"
		fi
		echo "FAIL $n: $why (${secs}s); last lines of its output:"
		tail -n 40 "$tmpout" | sed 's/^/    | /'
		fail=$((fail + 1)); failed_names+=("$n") ;;
	esac
done

if ((fail)); then
	echo "failed: ${failed_names[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
if ((fail)); then exit 1; fi
if ((pass + skip == 0)); then
	echo "no test was selected" >&2
	exit 1
fi
exit 0
