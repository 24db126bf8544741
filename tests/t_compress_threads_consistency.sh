#!/usr/bin/env bash
# t_compress_threads_consistency.sh - snapshots compressed by 1, 3 and 8
# compressor threads (--compress-threads) equal the memory at the pause
# instant: `bgsnap bench` with every method and 3 writer threads, text-like
# and mixed memory, verified page by page with the oracle, then restored
# eagerly and lazily and checked again.  32 MiB is eight chunks, enough
# for every slot of the pool to be in flight at once.  A negative (fast)
# level takes the same path.
# timeout: 400
# tags: concurrency
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
bin=$BUILD/bgsnap
[[ -x $bin ]] || { echo "FAIL: $bin is not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp

if ! "$bin" bench --mem 1M --method stop --compress zstd --duration-before 0 --duration-after 0 --json \
	>"$tmp/probe.json" 2>"$tmp/err"; then
	if grep -q "without libzstd" "$tmp/err" "$tmp/probe.json"; then
		echo "this bgsnap was built without libzstd"
		exit 77
	fi
fi

fails=0
runs=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

check() { # FILE COMPRESS_THREADS METHOD...
	python3 tests/bench_check.py "$1" --restore --compress zstd --compress-threads "$2" "${@:3}"
}

run() {   # compress-threads, then extra bench arguments
	local ct=$1
	shift
	local args=(bench --mem 32M --threads 3 --method all --compress-threads "$ct" --restore both --json
	            --duration-before 20 --duration-after 0 "$@")
	"$bin" "${args[@]}" >"$tmp/out.json" 2>"$tmp/err"
	local rc=$?
	runs=$((runs + 1))
	if ! msg=$(check "$tmp/out.json" "$ct" uffd uffd-signal mprotect fork stop); then
		fail "bgsnap ${args[*]}:"
		echo "$msg" | sed 's/^/    /'
		sed 's/^/    stderr: /' "$tmp/err" | head -n 10
	elif ((rc != 0)); then
		fail "bgsnap ${args[*]} exited $rc although every line verified"
	fi
}

# Reduced (the sanitizer stages): more compressor threads than cores only.
ct_list="1 3 8"
[[ ${BGSNAP_TEST_REDUCED:-0} == 1 ]] && ct_list=3
for ct in $ct_list; do
	run "$ct" --compress zstd --fill text --pattern random --buffer 1M
	run "$ct" --compress zstd --fill mixed --pattern hot --buffer 4K
done
run 2 --compress zstd:-3 --fill text --pattern seq --buffer 8M
grep -q '"compress_level":-3' "$tmp/out.json" || fail "zstd:-3: no compress_level -3 in $(head -c 300 "$tmp/out.json")"
"$bin" bench --compress-threads 65 --mem 1M >/dev/null 2>&1
(($? == 2)) || fail "--compress-threads 65 is not bad usage (exit 2)"
echo "compressed with a thread pool: $runs bench runs of every method, with eager and lazy restore"
((fails == 0)) || exit 1
echo "PASS"
