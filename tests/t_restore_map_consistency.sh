#!/usr/bin/env bash
# t_restore_map_consistency.sh - page-aligned snapshots (--page-aligned,
# format version 4) equal the memory at the pause instant, and restore
# exactly by copy, lazily and by mapping: `bgsnap bench` with every method,
# 1 and 3 writer threads, random and hot patterns; each snapshot is verified
# page by page with the oracle, then restored eagerly, lazily and by
# mapping (with and without the checksum check) into fresh memory and
# checked with the oracle again.  The map restore must have mapped the
# target (restore_map_mapped 1).  Compressed and aligned: still exact.  The
# kept files are mode 0600, version 4, and `bgsnap verify` accepts them.
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

fails=0
runs=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

check() { # FILE WANT_MAPPED METHOD...
	python3 - "$@" <<'PY'
import json, sys
path, want_mapped, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
bad, seen = [], {}
for line in open(path):
    o = json.loads(line)
    m = o.get("method")
    seen[m] = seen.get(m, 0) + 1
    if "skipped" in o:
        print("note: %s skipped: %s" % (m, o["skipped"]))
        continue
    if o.get("verified") is not True:
        bad.append("%s: not verified: %s" % (m, o.get("error", "")))
    if o.get("restore_verified") is not True:
        bad.append("%s: restore not verified: %s" % (m, o.get("restore_error", "")))
    if o.get("page_aligned") is not True:
        bad.append("%s: page_aligned is %r" % (m, o.get("page_aligned")))
    if o.get("restore_map_mapped") != want_mapped:
        bad.append("%s: restore_map_mapped %r, want %d" % (m, o.get("restore_map_mapped"), want_mapped))
for m in methods:
    if seen.get(m) != 1:
        bad.append("method %s has %d result lines" % (m, seen.get(m, 0)))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
}

all=(uffd uffd-signal mprotect fork stop)
for threads in 1 3; do
	for pattern in random hot; do
		args=(bench --mem 16M --threads "$threads" --pattern "$pattern" --method all --restore eager,lazy,map
		      --json --duration-before 20 --duration-after 0)
		"$bin" "${args[@]}" >"$tmp/out.json" 2>"$tmp/err"
		rc=$?
		runs=$((runs + 1))
		if ! msg=$(check "$tmp/out.json" 1 "${all[@]}"); then
			fail "bgsnap ${args[*]}:"
			echo "$msg" | sed 's/^/    /'
			sed 's/^/    stderr: /' "$tmp/err" | head -n 10
		elif ((rc != 0)); then
			fail "bgsnap ${args[*]} exited $rc although every line verified"
		fi
	done
done

# Compressed and aligned: compressed chunks are not aligned, so the region
# is restored by copy (mapped 0), exactly all the same.
if "$bin" bench --mem 1M --method stop --compress zstd --duration-before 0 --duration-after 0 --json \
	>/dev/null 2>&1; then
	args=(bench --mem 16M --threads 2 --method uffd,stop --compress zstd --fill text --restore eager,map --json
	      --duration-before 20 --duration-after 0)
	"$bin" "${args[@]}" >"$tmp/out.json" 2>"$tmp/err" || fail "bgsnap ${args[*]} failed: $(head -3 "$tmp/err")"
	runs=$((runs + 1))
	msg=$(check "$tmp/out.json" 0 uffd stop) || fail "compressed and aligned: $msg"
fi

# A chain written page-aligned (version 4 with a LINEAGE): the parents are
# found by id and the last image verifies.
"$bin" bench --mem 16M --incremental 3 --page-aligned --json --duration-after 0 >"$tmp/chain.json" 2>"$tmp/err" ||
	fail "aligned chain run failed: $(head -3 "$tmp/err")"
tail -n 1 "$tmp/chain.json" | grep -q '"depth":3.*"verified":true' ||
	fail "aligned chain: the last image did not verify: $(tail -n 1 "$tmp/chain.json" | head -c 300)"

# The files: mode 0600, version 4, accepted by verify.
"$bin" bench --mem 8M --threads 2 --method mprotect,fork --page-aligned --out "$tmp/keep.bgsnap" --json \
	--duration-before 20 --duration-after 0 >"$tmp/out.json" 2>"$tmp/err" || fail "kept run failed: $(head -3 "$tmp/err")"
for m in mprotect fork; do
	f=$tmp/keep.bgsnap.$m
	[[ -f $f ]] || { fail "$f was not kept"; continue; }
	mode=$(stat -c %a "$f")
	[[ $mode == 600 ]] || fail "$f has mode $mode, want 600"
	"$bin" verify "$f" >"$tmp/v" 2>&1 || fail "bgsnap verify $f: $(head -3 "$tmp/v")"
	"$bin" info --json "$f" >"$tmp/i" 2>&1 || "$bin" info "$f" >"$tmp/i" 2>&1
	grep -Eq '"version": ?4|version[^0-9]*4' "$tmp/i" || fail "bgsnap info $f does not say version 4: $(head -5 "$tmp/i")"
done
echo "page-aligned consistency: $runs bench runs, restored by copy, lazily and by mapping"
((fails == 0)) || exit 1
echo "PASS"
