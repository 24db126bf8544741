#!/usr/bin/env bash
# t_compress_cli.sh - bgsnap info / verify / extract / diff on compressed
# snapshots (CPAGES records, written by build/tests/unit/t_format_gen
# through the real encoder): info reports compress, raw and stored bytes;
# verify accepts the file and its stream; extract gives the same image as
# the uncompressed file of the same memory; diff sees no difference between
# the two and finds a changed page; a damaged or truncated compressed file
# fails verify (exit 1, offset named) and extract.
# timeout: 120
set -u
source "$(dirname "$0")/cli_lib.sh"

if ! "$GEN" --out "$T/a.bgs" --text --compress --pages 3000 2>"$T/err"; then
	grep -q "without libzstd" "$T/err" && { echo "skip: this bgsnap was built without libzstd"; exit 77; }
	echo "FAIL: generator: $(cat "$T/err")"
	exit 1
fi
"$GEN" --out "$T/same.bgs" --text --compress --pages 3000 || exit 1
"$GEN" --out "$T/b.bgs" --text --compress --pages 3000 --change 7 || exit 1
"$GEN" --out "$T/plain.bgs" --text --pages 3000 || exit 1

# info
expect 0 "$B" info --json "$T/a.bgs"
python3 - "$T/out" <<'PY' || fail "info --json of a compressed file: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["version"] == 2 and o["compress"] == "zstd", o
assert o["cpages_records"] > 0, o
assert 0 < o["stored_bytes"] < o["raw_bytes"] // 2, o
assert abs(o["ratio"] - o["stored_bytes"] / o["raw_bytes"]) < 1e-3, o
assert o["file_bytes"] < o["raw_bytes"], o
PY
expect 0 "$B" info --json "$T/plain.bgs"
python3 - "$T/out" <<'PY' || fail "info --json of a plain file: $(cat "$T/out")"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["version"] == 1 and o["compress"] == "none" and o["cpages_records"] == 0, o
assert o["stored_bytes"] > o["raw_bytes"], o
PY
expect 0 "$B" info "$T/a.bgs"
grep -q "compress:  zstd" "$T/out" || fail "info text: $(cat "$T/out")"

# verify, as a file and as a stream
expect 0 "$B" verify "$T/a.bgs"
expect 0 sh -c "cat '$T/a.bgs' | '$B' verify -"

# extract: the compressed and the plain file give the same image
for r in ram0 ram1 ram2; do
	expect 0 "$B" extract "$T/a.bgs" --region $r -o "$T/$r.z.img"
	expect 0 "$B" extract "$T/plain.bgs" --region $r -o "$T/$r.p.img"
	cmp -s "$T/$r.z.img" "$T/$r.p.img" || fail "extract of $r differs between compressed and plain files"
done

# diff
expect 0 "$B" diff "$T/a.bgs" "$T/plain.bgs"
grep -q "identical" "$T/out" || fail "diff compressed/plain: $(cat "$T/out")"
expect 1 "$B" diff "$T/a.bgs" "$T/b.bgs"
grep -q "region 'ram1': 1 of 64 pages differ; pages 7" "$T/out" || fail "diff output: $(cat "$T/out")"

# a damaged CPAGES record: one byte in the middle of the first one
off=$(python3 - "$T/a.bgs" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
o = 8
while o < len(b):
    t, f, n = struct.unpack_from("<IIQ", b, o)
    if t == 7:
        print(o + 16 + 24 + (n - 24) // 2)
        break
    o += 20 + n
PY
)
[ -n "$off" ] || fail "no CPAGES record found in a.bgs"
cp "$T/a.bgs" "$T/bad.bgs"
printf '\x55' | dd of="$T/bad.bgs" bs=1 seek="$off" conv=notrunc status=none
expect 1 "$B" verify "$T/bad.bgs"
grep -q "offset" "$T/err" || fail "verify of a damaged CPAGES record names no offset: $(cat "$T/err")"
expect 1 "$B" extract "$T/bad.bgs" --region ram2 -o "$T/bad.img"
head -c $(($(stat -c %s "$T/a.bgs") - 100)) "$T/a.bgs" >"$T/trunc.bgs"
expect 1 "$B" verify "$T/trunc.bgs"

((fails == 0)) || exit 1
echo "PASS: info, verify, extract, diff on compressed snapshots"
