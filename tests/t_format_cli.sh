#!/usr/bin/env bash
# t_format_cli.sh - exit codes and messages of bgsnap info / verify / extract
# / diff on good, corrupted, truncated and streamed snapshots (files written
# by build/tests/unit/t_format_gen through the real encoder).
# timeout: 120
set -u
source "$(dirname "$0")/cli_lib.sh"

"$GEN" --out "$T/a.bgs" || { echo "FAIL: generator"; exit 1; }
"$GEN" --out "$T/same.bgs" || exit 1
"$GEN" --out "$T/b.bgs" --change 7 || exit 1
"$GEN" --out "$T/c.bgs" --pages 200 || exit 1

for c in info verify extract diff; do
	expect 0 "$B" "$c" --help
	grep -q "usage: bgsnap $c" "$T/out" || fail "$c --help prints no usage"
	expect 2 "$B" "$c" --bogus-option
	expect 2 "$B" "$c"
done

# verify
expect 0 "$B" verify "$T/a.bgs"
grep -q "OK, 369 pages in 3 regions" "$T/out" || fail "verify output: $(cat "$T/out")"
expect 0 sh -c "cat '$T/a.bgs' | '$B' verify -"
expect 2 "$B" verify "$T/a.bgs" "$T/b.bgs"
expect 1 "$B" verify "$T/missing.bgs"
size=$(stat -c %s "$T/a.bgs")
for off in 0 9 100 5000 $((size / 2)) $((size - 90)) $((size - 1)); do
	cp "$T/a.bgs" "$T/x.bgs"
	printf '\xff' | dd of="$T/x.bgs" bs=1 seek="$off" conv=notrunc status=none
	expect 1 "$B" verify "$T/x.bgs"
	grep -q "offset" "$T/err" || fail "corrupt byte $off: message without offset: $(cat "$T/err")"
	expect 1 sh -c "'$B' verify - < '$T/x.bgs'"
done
for len in 0 7 8 100 $((size / 3)) $((size - 84)) $((size - 1)); do
	head -c "$len" "$T/a.bgs" > "$T/x.bgs"
	expect 1 "$B" verify "$T/x.bgs"
	grep -qE "truncated|magic" "$T/err" || fail "truncated to $len: $(cat "$T/err")"
done
cp "$T/a.bgs" "$T/x.bgs"; echo junk >> "$T/x.bgs"
expect 1 "$B" verify "$T/x.bgs"
grep -q "trailing data" "$T/err" || fail "trailing data: $(cat "$T/err")"

# info
expect 0 "$B" info "$T/a.bgs"
grep -q "ram2" "$T/out" || fail "info lists no region ram2"
expect 0 "$B" info --json "$T/a.bgs"
if command -v python3 >/dev/null; then
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["pages_total"]==369 and len(d["regions"])==3 and d["states"][0]["name"].startswith("dev")' "$T/out" \
		|| fail "info --json is not the expected JSON: $(cat "$T/out")"
fi
head -c 1000 "$T/a.bgs" > "$T/x.bgs"
expect 1 "$B" info "$T/x.bgs"

# extract: sparse, 0600, content equal to what read_region gives (checked
# against a second extract of an identical file, and by size/holes)
umask 022
expect 0 "$B" extract "$T/a.bgs" --region ram1 -o "$T/ram1.img"
[ "$(stat -c %s "$T/ram1.img")" = $((64 * 4096)) ] || fail "extract size $(stat -c %s "$T/ram1.img")"
[ "$(stat -c %a "$T/ram1.img")" = 600 ] || fail "extract mode $(stat -c %a "$T/ram1.img")"
expect 0 "$B" extract "$T/same.bgs" --region ram1 -o "$T/ram1b.img"
cmp -s "$T/ram1.img" "$T/ram1b.img" || fail "two extracts of identical snapshots differ"
expect 0 "$B" extract "$T/b.bgs" --region ram1 -o "$T/ram1c.img"
cmp -s "$T/ram1.img" "$T/ram1c.img" && fail "extract of a changed snapshot is identical"
# every 3rd page is zero: page 2 must be all zero bytes, page 0 not
[ "$(dd if="$T/ram1.img" bs=4096 skip=2 count=1 status=none | tr -d '\0' | wc -c)" = 0 ] || fail "zero page not zero"
[ "$(dd if="$T/ram1.img" bs=4096 skip=0 count=1 status=none | tr -d '\0' | wc -c)" -gt 0 ] || fail "data page is zero"
alloc=$(stat -c %b "$T/ram1.img"); bs=$(stat -c %B "$T/ram1.img")
[ $((alloc * bs)) -lt $((64 * 4096)) ] || echo "note: filesystem did not keep holes ($((alloc * bs)) bytes allocated)"
expect 1 "$B" extract "$T/a.bgs" --region nope -o "$T/n.img"
grep -q "'ram0', 'ram1', 'ram2'" "$T/err" || fail "unknown region message does not list names: $(cat "$T/err")"
[ -e "$T/n.img" ] && fail "extract of an unknown region left a file"
expect 2 "$B" extract "$T/a.bgs" --region ram1

# diff
expect 0 "$B" diff "$T/a.bgs" "$T/same.bgs"
grep -q "identical" "$T/out" || fail "diff identical: $(cat "$T/out")"
expect 1 "$B" diff "$T/a.bgs" "$T/b.bgs"
grep -q "region 'ram1': 1 of 64 pages differ; pages 7" "$T/out" || fail "diff output: $(cat "$T/out")"
expect 1 "$B" diff "$T/a.bgs" "$T/c.bgs"
grep -q "layout differs" "$T/out" || fail "diff layout: $(cat "$T/out")"
expect 2 "$B" diff "$T/a.bgs"
expect 1 "$B" diff "$T/a.bgs" "$T/x.bgs"

if [ "$fails" -gt 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "ok: info/verify/extract/diff exit codes and messages"
