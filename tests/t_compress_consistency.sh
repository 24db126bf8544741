#!/usr/bin/env bash
# t_compress_consistency.sh - compressed snapshots (--compress zstd) equal
# the memory at the pause instant: `bgsnap bench` with every method, 1 and 3
# writer threads, every pattern, a one-page and an 8 MiB copy buffer; each
# snapshot is verified page by page with the oracle, then restored eagerly
# and lazily into fresh memory and checked with the oracle again.  The
# result lines must say compress "zstd", and the file must be smaller than
# the memory (the bench's pages are compressible and some are zero).
# --fill random, text and zero give incompressible, text-like and zero
# memory.  The bench's host-loss watch after each snapshot is off
# (--duration-after 0): this test checks content, not speed.
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

if "$bin" bench --mem 1M --method stop --compress zstd --duration-before 0 --duration-after 0 --json >"$tmp/probe.json" 2>"$tmp/err"; then
	:
elif grep -q "without libzstd" "$tmp/err" "$tmp/probe.json"; then
	echo "this bgsnap was built without libzstd"
	exit 77
fi

fails=0
runs=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

check() { # FILE METHOD...: verified, restored, compressed by zstd and smaller
	python3 tests/bench_check.py "$1" --restore --compress zstd "${@:2}"
}

# Reduced (the sanitizer stages): 3 writers and the one-page buffer (the
# most racing corner) only.
threads_list="1 3" buffers="4K 8M"
[[ ${BGSNAP_TEST_REDUCED:-0} == 1 ]] && threads_list=3 buffers=4K
for threads in $threads_list; do
	for pattern in seq random hot; do
		for buffer in $buffers; do
			args=(bench --mem 16M --threads "$threads" --pattern "$pattern" --buffer "$buffer" --method all
			      --compress zstd --restore both --json --duration-before 20 --duration-after 0)
			"$bin" "${args[@]}" >"$tmp/out.json" 2>"$tmp/err"
			rc=$?
			runs=$((runs + 1))
			if ! msg=$(check "$tmp/out.json" uffd uffd-signal mprotect fork stop); then
				fail "bgsnap ${args[*]}:"
				echo "$msg" | sed 's/^/    /'
				sed 's/^/    stderr: /' "$tmp/err" | head -n 10
			elif ((rc != 0)); then
				fail "bgsnap ${args[*]} exited $rc although every line verified"
			fi
		done
	done
done
# Incompressible, compressible and zero content (PAGES fallback, CPAGES, ZERO).
for fill in random text zero; do
	args=(bench --mem 16M --threads 3 --pattern random --buffer 1M --method all --fill "$fill"
	      --compress zstd --restore both --json --duration-before 20 --duration-after 0)
	"$bin" "${args[@]}" >"$tmp/out.json" 2>"$tmp/err" || fail "bgsnap ${args[*]} failed: $(head -3 "$tmp/err")"
	runs=$((runs + 1))
	msg=$(check "$tmp/out.json" uffd uffd-signal mprotect fork stop) || fail "--fill $fill: $msg"
	grep -q "\"fill\":\"$fill\"" "$tmp/out.json" || fail "--fill $fill: JSON does not say fill $fill"
done
# A level other than the default.
"$bin" bench --mem 16M --threads 2 --method uffd,stop --compress zstd:9 --restore both --json \
	--duration-before 20 --duration-after 0 >"$tmp/out.json" 2>"$tmp/err" || fail "zstd:9 run failed: $(head -3 "$tmp/err")"
msg=$(check "$tmp/out.json" uffd stop) || fail "zstd:9: $msg"
grep -q '"compress_level":9' "$tmp/out.json" || fail "zstd:9: no compress_level 9 in $(head -c 300 "$tmp/out.json")"
"$bin" bench --compress lz4 --mem 1M >/dev/null 2>&1
(($? == 2)) || fail "--compress lz4 is not bad usage (exit 2)"
echo "compressed consistency: $runs bench runs of every method, with eager and lazy restore"
((fails == 0)) || exit 1
echo "PASS"
