#!/usr/bin/env bash
# t_chain_cli.sh - the bgsnap command on chains of snapshots (written by
# build/tests/unit/t_chain_gen through the real encoder): for chains of 1, 2
# and 10 files, info shows id, parent and depth (text and --json), verify
# checks every link, extract of the last file gives the last image, merge
# writes a full snapshot (mode 0600, verified, version 1 or 2 with
# --compress zstd) whose extract and diff equal the chain's.  And the
# chains that must fail, naming the file: a missing parent (its directory
# named), a corrupt middle file (verify names it and the offset), a parent
# whose checksum does not match (same id, another file), a foreign parent
# (another chain's file at the same depth), merge onto a file of the chain.
# timeout: 180
set -u
source "$(dirname "$0")/cli_lib.sh"
CGEN="$BUILD/tests/unit/t_chain_gen"
[ -x "$CGEN" ] || { echo "skip: $CGEN not built"; exit 77; }

# chain DIR N [OPTIONS]: a chain of N files in DIR (snap-000.bgs ...), the
# last image's regions in DIR/expect/ramI.raw
chain() {
	local d=$1 n=$2; shift 2
	mkdir -p "$d/expect"
	"$CGEN" --dir "$d" --links "$n" --expect "$d/expect" "$@" || { echo "FAIL: generator"; exit 1; }
}

# extract_equal FILE DIR WHAT: every region of FILE equals DIR/expect
extract_equal() {
	local f=$1 d=$2 what=$3
	for reg in ram0 ram1 ram2; do
		expect 0 "$B" extract "$f" --region "$reg" -o "$d/$reg.out"
		cmp -s "$d/$reg.out" "$d/expect/$reg.raw" || fail "$what: region $reg differs from the image"
		rm -f "$d/$reg.out"
	done
}

have_zstd=1
for n in 1 2 10; do
	d="$T/c$n"
	chain "$d" "$n" --seed "$n"
	last=$(printf '%s/snap-%03d.bgs' "$d" $((n - 1)))
	expect 0 "$B" info "$last"
	grep -q "^lineage:   id [0-9a-f]\{32\}" "$T/out" || fail "chain of $n: info shows no lineage: $(cat "$T/out")"
	if [ "$n" -gt 1 ]; then
		grep -q "incremental, depth $((n - 1))" "$T/out" || fail "chain of $n: info depth: $(cat "$T/out")"
		grep -q "parent [0-9a-f]\{32\} (file crc 0x" "$T/out" || fail "chain of $n: info parent: $(cat "$T/out")"
		grep -q "chain:     $n files" "$T/out" || fail "chain of $n: info chain: $(cat "$T/out")"
	else
		grep -q "full (depth 0)" "$T/out" || fail "chain of 1: info: $(cat "$T/out")"
	fi
	expect 0 "$B" info --json "$last"
	python3 - "$T/out" "$n" "$d" <<'PY' || fail "chain of $n: info --json: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1])); n = int(sys.argv[2]); d = sys.argv[3]
assert o["version"] == 3 and o["depth"] == n - 1 and o["incremental"] == (n > 1), o
assert len(o["id"]) == 32 and (len(o["parent_id"]) == 32) == (n > 1), o
assert o["chain"] == ["%s/snap-%03d.bgs" % (d, k) for k in range(n)], o["chain"]
PY
	expect 0 "$B" verify "$last"
	[ "$n" -eq 1 ] || grep -q "chain of $n files, each verified" "$T/out" || fail "chain of $n: verify: $(cat "$T/out")"
	extract_equal "$last" "$d" "chain of $n"

	expect 0 "$B" merge "$last" -o "$d/full.bgs"
	[ "$(stat -c %a "$d/full.bgs")" = 600 ] || fail "chain of $n: merged file mode $(stat -c %a "$d/full.bgs")"
	expect 0 "$B" verify "$d/full.bgs"
	expect 0 "$B" info --json "$d/full.bgs"
	python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["version"] == 1 and "depth" not in o, o' \
		"$T/out" || fail "chain of $n: merged file is not a plain version 1 file"
	extract_equal "$d/full.bgs" "$d" "chain of $n merged"
	expect 0 "$B" diff "$last" "$d/full.bgs"
	if [ "$have_zstd" = 1 ]; then
		timeout 60 "$B" merge "$last" -o "$d/fullz.bgs" --compress zstd >"$T/out" 2>"$T/err"
		if [ $? -ne 0 ] && grep -q "no zstd" "$T/err"; then
			have_zstd=0
		elif [ ! -f "$d/fullz.bgs" ]; then
			fail "chain of $n: merge --compress zstd: $(cat "$T/err")"
		else
			expect 0 "$B" info --json "$d/fullz.bgs"
			python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["version"] == 2, o' "$T/out" ||
				fail "chain of $n: merged --compress zstd is not version 2"
			expect 0 "$B" diff "$d/full.bgs" "$d/fullz.bgs"
		fi
	fi
done

# A compressed chain reads as the same image.
d="$T/cz"
if [ "$have_zstd" = 1 ]; then
	chain "$d" 4 --seed 5 --compress
	expect 0 "$B" verify "$d/snap-003.bgs"
	extract_equal "$d/snap-003.bgs" "$d" "compressed chain"
fi

# A missing parent: every command that reads the file fails, naming the directory.
d="$T/missing"
chain "$d" 3 --seed 21
rm "$d/snap-001.bgs"
for cmd in info verify; do
	expect 1 "$B" $cmd "$d/snap-002.bgs"
	grep -q "parent [0-9a-f]\{32\} of .*snap-002.bgs (depth 2) not found among the files of $d" "$T/err" ||
		fail "missing parent: $cmd says: $(cat "$T/err")"
done
expect 1 "$B" extract "$d/snap-002.bgs" --region ram1 -o "$d/x.raw"
expect 1 "$B" merge "$d/snap-002.bgs" -o "$d/m.bgs"
[ ! -e "$d/m.bgs" ] || fail "missing parent: merge left an output"

# A corrupt middle file: the chain opens, verify names that file and the offset.
d="$T/corrupt"
chain "$d" 3 --seed 22
size=$(stat -c %s "$d/snap-001.bgs")
printf '\x55' | dd of="$d/snap-001.bgs" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect 1 "$B" verify "$d/snap-002.bgs"
grep -q "snap-001.bgs: .*offset [0-9]" "$T/err" || fail "corrupt middle: verify says: $(cat "$T/err")"
grep -q "snap-002.bgs: OK" "$T/out" && fail "corrupt middle: verify printed OK"

# A parent with the right id whose checksum does not match (the same chain
# written compressed: same ids, other bytes).
d="$T/crc"
chain "$d" 3 --seed 23
if [ "$have_zstd" = 1 ]; then
	chain "$T/crc_z" 3 --seed 23 --compress
	cp "$T/crc_z/snap-001.bgs" "$d/snap-001.bgs"
	expect 1 "$B" verify "$d/snap-002.bgs"
	grep -q "snap-001.bgs: file checksum 0x[0-9a-f]*, but .*snap-002.bgs expects" "$T/err" ||
		fail "crc mismatch: verify says: $(cat "$T/err")"
fi

# A foreign parent: another chain's file at the same depth in its place.
d="$T/foreign"
chain "$d" 3 --seed 24
chain "$T/other" 3 --seed 25
cp "$T/other/snap-001.bgs" "$d/snap-001.bgs"
expect 1 "$B" info "$d/snap-002.bgs"
grep -q "not found among the files of $d" "$T/err" || fail "foreign parent: info says: $(cat "$T/err")"

# merge with the parents given: the same image; a foreign one refused.
d="$T/c10"
expect 0 "$B" merge "$d/snap-009.bgs" -o "$T/given.bgs" $(for k in 0 1 2 3 4 5 6 7 8; do printf -- '--parent %s/snap-%03d.bgs ' "$d" $k; done)
expect 0 "$B" diff "$T/given.bgs" "$d/full.bgs"
expect 1 "$B" merge "$T/foreign/snap-002.bgs" -o "$T/f.bgs" --parent "$T/foreign/snap-000.bgs" --parent "$T/other/snap-001.bgs"
grep -q "other/snap-001.bgs" "$T/err" || fail "merge with a foreign --parent: $(cat "$T/err")"
[ ! -e "$T/f.bgs" ] || fail "merge with a foreign --parent left an output"

# merge refuses to write over a file of the chain, and bad usage is 2.
d="$T/c2"
expect 1 "$B" merge "$d/snap-001.bgs" -o "$d/snap-000.bgs"
grep -q "a file of the chain" "$T/err" || fail "merge onto the chain: $(cat "$T/err")"
expect 0 "$B" verify "$d/snap-001.bgs"
expect 2 "$B" merge "$d/snap-001.bgs"
expect 2 "$B" merge "$d/snap-001.bgs" -o "$d/x.bgs" --compress lz4
expect 0 "$B" merge --help

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok: chains of 1, 2, 10; merge; missing, corrupt, mismatched and foreign parents"
