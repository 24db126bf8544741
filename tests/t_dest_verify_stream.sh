#!/usr/bin/env bash
# t_dest_verify_stream.sh - `bgsnap verify -` and `bgsnap info -` read a
# snapshot stream on stdin: a whole stream verifies and info prints what it
# prints for the file (text and JSON, but for the name); a stream cut short
# (head -c) or with one byte changed fails with a message that says what
# and at which offset; a pipe given by name is read as a stream too.
# timeout: 120
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
tool=$BUILD/bgsnap
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

f=$tmp/s.snap
"$tool" bench --mem 8M --threads 1 --out "$f" >"$tmp/bench.out" 2>&1 || { echo "FAIL: bench: $(cat "$tmp/bench.out")"; exit 1; }
size=$(stat -c %s "$f")

cat "$f" | "$tool" verify - >"$tmp/v.out" 2>&1 || fail "verify - on a whole stream: $(cat "$tmp/v.out")"
grep -q '^-: OK, 2048 pages' "$tmp/v.out" || fail "verify -: no OK line: $(cat "$tmp/v.out")"
"$tool" verify <(cat "$f") >"$tmp/p.out" 2>&1 || fail "verify of a pipe by name: $(cat "$tmp/p.out")"

"$tool" info "$f" | sed 1d >"$tmp/i.file"
cat "$f" | "$tool" info - >"$tmp/i.stream" 2>&1 || fail "info -: $(cat "$tmp/i.stream")"
sed 1d "$tmp/i.stream" | cmp -s "$tmp/i.file" - || fail "info - differs from info FILE: $(sed 1d "$tmp/i.stream" | diff "$tmp/i.file" - | head -n 6)"
"$tool" info --json "$f" | sed 's/"file":"[^"]*"//' >"$tmp/j.file"
"$tool" info --json - <"$f" | sed 's/"file":"[^"]*"//' >"$tmp/j.stream"
cmp -s "$tmp/j.file" "$tmp/j.stream" || fail "info --json - differs from info --json FILE"

# cut CMD... : CMD on a cut or changed stream exits 1 with a message.
bad() {
	local name=$1 rc=0
	shift
	"$@" >"$tmp/b.out" 2>"$tmp/b.err" || rc=$?
	[[ $rc -eq 1 ]] || fail "$name: exit $rc, not 1"
	grep -qE 'offset [0-9]+' "$tmp/b.err" || fail "$name: no message with an offset: $(cat "$tmp/b.err")"
	grep -q OK "$tmp/b.out" && fail "$name: said OK"
}
for n in 100 $((size / 2)) $((size - 1)); do
	head -c "$n" "$f" | bad "verify - cut at $n" "$tool" verify -
	head -c "$n" "$f" | bad "info - cut at $n" "$tool" info -
done
cp "$f" "$tmp/c.snap"
printf '\xa5' | dd of="$tmp/c.snap" bs=1 seek=$((size / 3)) conv=notrunc status=none
cmp -s "$f" "$tmp/c.snap" && fail "the byte changed was already 0xa5"
bad "verify - of a changed byte" "$tool" verify - <"$tmp/c.snap"
grep -qi 'checksum' "$tmp/b.err" || fail "a changed byte: the message does not name a checksum: $(cat "$tmp/b.err")"

[[ $fails -eq 0 ]] || exit 1
echo "ok: verify - and info - on a whole, a cut and a changed stream ($size bytes)"
