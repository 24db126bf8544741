#!/usr/bin/env bash
# t_cli_extract_keeps_input.sh - `bgsnap extract` (raw and --elf) never
# destroys a file it did not create: an output that is the input snapshot
# itself (same path, a symlink to it, a hard link to it) is refused with a
# clear message and the snapshot stays intact; an existing output is left
# as it was when the extract fails (corrupt data, unknown region); an
# output that is not a regular file (a FIFO) is refused; a symlink as the
# output is followed; no temporary is left behind either way.
# timeout: 120
set -u
source "$(dirname "$0")/cli_lib.sh"
# no_temporaries: nothing but the files the test made
no_temporaries() {
	local left
	left=$(find "$T" -name '.bgsnap-image-*' | head -3)
	[ -z "$left" ] || fail "temporary left behind: $left"
}

"$GEN" --out "$T/a.bgs" || { echo "FAIL: generator"; exit 1; }
cp "$T/a.bgs" "$T/orig.bgs"
intact() { # WHAT: a.bgs is still the snapshot it was
	if [ ! -f "$T/a.bgs" ]; then
		fail "$1: the input snapshot was deleted"
		cp "$T/orig.bgs" "$T/a.bgs"
	elif ! cmp -s "$T/a.bgs" "$T/orig.bgs"; then
		fail "$1: the input snapshot was changed"
		cp "$T/orig.bgs" "$T/a.bgs"
	fi
}

ln -s a.bgs "$T/sym.bgs"
ln "$T/a.bgs" "$T/hard.bgs"
for mode in "--region ram1" "--elf"; do
	for out in "$T/a.bgs" "$T/sym.bgs" "$T/hard.bgs" "$T/./a.bgs"; do
		# shellcheck disable=SC2086
		expect 1 "$B" extract "$T/a.bgs" $mode -o "$out"
		grep -q "is the snapshot .* itself" "$T/err" || fail "extract $mode -o $out: message: $(cat "$T/err")"
		intact "extract $mode -o $out"
	done
	# The same file named the other way round: input through the symlink.
	# shellcheck disable=SC2086
	expect 1 "$B" extract "$T/sym.bgs" $mode -o "$T/a.bgs"
	intact "extract sym.bgs $mode -o a.bgs"
done
"$B" verify "$T/a.bgs" >/dev/null 2>&1 || fail "the input snapshot no longer verifies"

# A failing extract leaves an existing output as it was.
echo "precious" > "$T/keep.txt"
expect 1 "$B" extract "$T/a.bgs" --region nope -o "$T/keep.txt"
[ "$(cat "$T/keep.txt" 2>/dev/null)" = precious ] || fail "unknown region: the existing output was changed or removed"
size=$(stat -c %s "$T/a.bgs")
cp "$T/a.bgs" "$T/bad.bgs"
# A byte in the middle of the page data: open succeeds, a read fails.
printf '\xff' | dd of="$T/bad.bgs" bs=1 seek=$((size / 3)) conv=notrunc status=none
for mode in "--region ram2" "--elf"; do
	# shellcheck disable=SC2086
	expect 1 "$B" extract "$T/bad.bgs" $mode -o "$T/keep.txt"
	[ "$(cat "$T/keep.txt" 2>/dev/null)" = precious ] || fail "corrupt input $mode: the existing output was changed or removed"
done
no_temporaries

# Not a regular file: refused, left alone.
mkfifo "$T/fifo"
expect 1 "$B" extract "$T/a.bgs" --region ram1 -o "$T/fifo"
grep -q "not a regular file" "$T/err" || fail "FIFO output: message: $(cat "$T/err")"
[ -p "$T/fifo" ] || fail "the FIFO was replaced or removed"
mkdir "$T/dir"
expect 1 "$B" extract "$T/a.bgs" --region ram1 -o "$T/dir"
[ -d "$T/dir" ] || fail "the directory was removed"

# A successful extract replaces an existing output (0600), through a symlink too.
umask 022
expect 0 "$B" extract "$T/a.bgs" --region ram1 -o "$T/keep.txt"
[ "$(stat -c %s "$T/keep.txt")" = $((64 * 4096)) ] || fail "extract over an existing file: size $(stat -c %s "$T/keep.txt")"
[ "$(stat -c %a "$T/keep.txt")" = 600 ] || fail "extract over an existing file: mode $(stat -c %a "$T/keep.txt")"
echo old > "$T/target.img"
ln -s target.img "$T/link.img"
expect 0 "$B" extract "$T/a.bgs" --region ram1 -o "$T/link.img"
[ -L "$T/link.img" ] || fail "the output symlink was replaced instead of followed"
cmp -s "$T/target.img" "$T/keep.txt" || fail "the symlink's target does not hold the image"
no_temporaries

if [ "$fails" -gt 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "ok: extract never destroys its input or a file it did not create"
