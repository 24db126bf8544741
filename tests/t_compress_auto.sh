#!/usr/bin/env bash
# t_compress_auto.sh - adaptive compression (--compress zstd:auto): every
# method, 3 writer threads, text-like and mixed memory, each snapshot
# verified page by page with the oracle and restored eagerly and lazily;
# once on this disk (the writer chooses, raw where the disk keeps up) and
# once under a 20 MB/s rate limit, where compressing wins and every method
# but stop (which ignores the limit) must compress chunks.  The JSON must
# say compress "zstd:auto" and count chunks compressed and raw.  Then the
# CLI on a file mixing compressed and raw chunks (written by the real
# encoder, told slow and fast by turns: build/tests/unit/t_format_gen
# --adaptive-mix): info counts both record kinds, verify accepts it as a
# file and a stream, extract gives the same images as the uncompressed
# file of the same memory, diff finds them identical.
# timeout: 400
# tags: concurrency
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/cli_lib.sh
bin=$B
export TMPDIR=$T

if ! "$bin" bench --mem 1M --method stop --compress zstd:auto --duration-before 0 --duration-after 0 --json \
	>"$T/probe.json" 2>"$T/err"; then
	if grep -q "without libzstd" "$T/err" "$T/probe.json"; then
		echo "this bgsnap was built without libzstd"
		exit 77
	fi
fi

runs=0
check() { # FILE METHOD...
	python3 tests/bench_check.py "$1" --restore --compress zstd:auto "${@:2}"
}
run() { # extra bench arguments
	local args=(bench --mem 24M --threads 3 --method all --compress zstd:auto --restore both --json
	            --duration-before 20 --duration-after 0 "$@")
	"$bin" "${args[@]}" >"$T/out.json" 2>"$T/err"
	local rc=$?
	runs=$((runs + 1))
	if ! msg=$(check "$T/out.json" uffd uffd-signal mprotect fork stop); then
		fail "bgsnap ${args[*]}:"
		echo "$msg" | sed 's/^/    /'
		sed 's/^/    stderr: /' "$T/err" | head -n 10
	elif ((rc != 0)); then
		fail "bgsnap ${args[*]} exited $rc although every line verified"
	fi
}

run --fill text --pattern random --buffer 1M
run --fill mixed --pattern hot --buffer 4K --compress-threads 2
run --fill text --pattern seq --buffer 8M --max-rate 20M
python3 - "$T/out.json" <<'PY' || fail "under a 20 MB/s limit: $(cat "$T/out.json" | head -c 2000)"
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    if "method" not in o or "chunks_compressed" not in o:
        continue
    # stop ignores the limit; the others must have found compressing worth it.
    if o["method"] != "stop":
        assert o["chunks_compressed"] > 0, o
        assert o["bytes_stored"] < o["mem_bytes"], o
PY
"$bin" bench --compress zstd:auto:99 --mem 1M >/dev/null 2>&1
(($? == 2)) || fail "--compress zstd:auto:99 is not bad usage (exit 2)"
"$bin" bench --compress zstd:autox --mem 1M >/dev/null 2>&1
(($? == 2)) || fail "--compress zstd:autox is not bad usage (exit 2)"

# A file that mixes CPAGES and raw PAGES records, and the same memory plain.
"$GEN" --out "$T/mix.bgs" --text --adaptive-mix --pages 3000 || fail "generator --adaptive-mix"
"$GEN" --out "$T/plain.bgs" --text --pages 3000 || fail "generator (plain)"
expect 0 "$B" info --json "$T/mix.bgs"
python3 - "$T/out" <<'PY' || fail "info --json of a mixed file: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["version"] == 2 and o["compress"] == "zstd", o
assert o["cpages_records"] > 0 and o["pages_records"] > 0, o
assert 0 < o["stored_bytes"] < o["raw_bytes"], o
PY
expect 0 "$B" verify "$T/mix.bgs"
expect 0 sh -c "cat '$T/mix.bgs' | '$B' verify -"
for r in ram0 ram1 ram2; do
	expect 0 "$B" extract "$T/mix.bgs" --region $r -o "$T/$r.m.img"
	expect 0 "$B" extract "$T/plain.bgs" --region $r -o "$T/$r.p.img"
	cmp -s "$T/$r.m.img" "$T/$r.p.img" || fail "extract of $r differs between the mixed and the plain file"
done
expect 0 "$B" diff "$T/mix.bgs" "$T/plain.bgs"
grep -q "identical" "$T/out" || fail "diff mixed/plain: $(cat "$T/out")"

echo "adaptive compression: $runs bench runs of every method, with eager and lazy restore; mixed file read by the CLI"
((fails == 0)) || exit 1
echo "PASS"
