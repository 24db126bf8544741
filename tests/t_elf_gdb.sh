#!/usr/bin/env bash
# t_elf_gdb.sh - `bgsnap extract FILE --elf -o CORE` writes an ELF core that
# readelf and gdb understand: one PT_LOAD per region at the region's address,
# the state blobs and region names as BGSNAP notes, zero pages as holes; and
# gdb reads from it, at the region's addresses, the same bytes as the raw
# `bgsnap extract --region` image.  A corrupt snapshot leaves no core.
# timeout: 180
set -u
BUILD="${BUILD:-build}"
B="$BUILD/bgsnap"
GEN="$BUILD/tests/unit/t_format_gen"
[ -x "$B" ] && [ -x "$GEN" ] || { echo "skip: $B or $GEN not built"; exit 77; }
command -v gdb >/dev/null || { echo "skip: gdb is not installed"; exit 77; }
command -v readelf >/dev/null || { echo "skip: readelf is not installed"; exit 77; }
"$B" extract --help | grep -q -- --elf || { echo "skip: this bgsnap extract has no --elf yet"; exit 77; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$GEN" --out "$T/s.bgs" --pages 300 --states 2 || { echo "FAIL: generator"; exit 1; }
"$B" extract "$T/s.bgs" --elf -o "$T/core" >"$T/out" 2>"$T/err" || { echo "FAIL: extract --elf: $(cat "$T/err")"; exit 1; }
[ "$(stat -c %a "$T/core")" = 600 ] || fail "core mode $(stat -c %a "$T/core"), expected 600"

# Regions from `bgsnap info`: "  NAME  addr 0x...  size N (...)".
mapfile -t regions < <("$B" info "$T/s.bgs" | awk '$2 == "addr" && $4 == "size" { print $1, $3, $5 }')
[ "${#regions[@]}" -ge 2 ] || { echo "FAIL: no regions in info output"; exit 1; }
readelf -l -W "$T/core" >"$T/ph" 2>&1 || fail "readelf -l failed: $(head -3 "$T/ph")"
grep -q "Core file" "$T/ph" || fail "readelf does not see a core file"
nload=$(grep -c '^ *LOAD' "$T/ph")
[ "$nload" = "${#regions[@]}" ] || fail "$nload PT_LOAD segments for ${#regions[@]} regions"
readelf -n -W "$T/core" >"$T/notes" 2>&1
nbg=$(grep -c '^ *BGSNAP' "$T/notes")
nstates=$("$B" info "$T/s.bgs" | awk '/^state:/ { print $2 }')
[ "$nbg" = $(( ${#regions[@]} + nstates )) ] || fail "$nbg BGSNAP notes, expected ${#regions[@]} regions + $nstates states"

checked=0
for reg in "${regions[@]}"; do
	set -- $reg
	name=$1 addr=$2 size=$3
	grep -Eq "LOAD +0x[0-9a-f]+ 0x0*${addr#0x} 0x0+ 0x0*$(printf %x "$size") 0x0*$(printf %x "$size") RW" "$T/ph" ||
		fail "no PT_LOAD for region $name at $addr size $size: $(grep LOAD "$T/ph")"
	"$B" extract "$T/s.bgs" --region "$name" -o "$T/raw.$name" >/dev/null 2>"$T/err" || { fail "raw extract $name: $(cat "$T/err")"; continue; }
	pages=$((size / 4096))
	# First page, last page, and a few in between, at offsets within the page.
	cmds=() offs=()
	for p in 0 1 2 $((pages / 2)) $((pages - 1)); do
		[ "$p" -lt "$pages" ] || continue
		off=$((p * 4096 + (p * 72) % 4088))
		off=$((off - off % 8))
		offs+=("$off")
		cmds+=(-ex "x/gx $(printf 0x%x $((addr + off)))")
	done
	gdb -batch -nx "${cmds[@]}" -c "$T/core" >"$T/gdb" 2>&1
	mapfile -t got < <(grep -E '^0x[0-9a-f]+:' "$T/gdb" | awk '{ print $2 }')
	[ "${#got[@]}" = "${#offs[@]}" ] || { fail "gdb read ${#got[@]} of ${#offs[@]} words in $name: $(head -5 "$T/gdb")"; continue; }
	for i in "${!offs[@]}"; do
		want=0x$(od -An -tx8 -j "${offs[$i]}" -N8 "$T/raw.$name" | tr -d ' ')
		[ "$((want))" = "$((got[$i]))" ] || fail "region $name offset ${offs[$i]}: gdb reads ${got[$i]}, raw image has $want"
		checked=$((checked + 1))
	done
done

# Sparse: zero pages are holes.
alloc=$(du -k "$T/core" | cut -f1)
apparent=$(du -k --apparent-size "$T/core" | cut -f1)
[ "$alloc" -lt "$apparent" ] || fail "core is not sparse: $alloc KiB allocated of $apparent"

# A corrupt snapshot: exit 1, a message, no core left.
cp "$T/s.bgs" "$T/bad.bgs"
printf '\xff' | dd of="$T/bad.bgs" bs=1 seek=5000 conv=notrunc 2>/dev/null
"$B" extract "$T/bad.bgs" --elf -o "$T/badcore" >/dev/null 2>"$T/err"
rc=$?
[ "$rc" = 1 ] || fail "extract --elf of a corrupt file exited $rc, expected 1"
[ -s "$T/err" ] || fail "no message for a corrupt file"
[ ! -e "$T/badcore" ] || fail "a core was left behind for a corrupt file"

if [ "$fails" = 0 ]; then
	echo "ok: ${#regions[@]} regions as PT_LOAD, $nbg notes, gdb read $checked words equal to the raw images"
	exit 0
fi
exit 1
