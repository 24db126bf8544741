#!/usr/bin/env bash
# t_dest_vm_restore_stream.sh - `bgsnap-vm restore -` restores a guest from
# a snapshot stream on stdin and continues it exactly as a restore of the
# file does: a snapshot taken into exec:bgsnap-vm restore - (raw and zstd,
# methods uffd, mprotect, fork, stop) makes the receiver print exactly the
# rest of the original run from the snapshot's console offset; a file piped
# in (cat f | restore -), or given as a named pipe, prints what restore of
# the file prints.  A stream cut short or with one byte changed fails with
# exit 1, a message that says what and at which offset, and no guest output
# at all (the guest never ran); an incremental snapshot on stdin is refused
# naming why.
# timeout: 240
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
cd "$tmp" || exit 1

# Long enough (about a second here) that a snapshot at 100 ms comes well
# before the guest's last output, on a quiet machine too.
args=(sweep --mem 16M --rounds 3000)
"$vm" run "${args[@]}" >"$tmp/plain" 2>"$tmp/plain.err" || { echo "FAIL: plain run: $(tail -n 3 "$tmp/plain.err")"; exit 1; }

# rest NAME OFF FILE: FILE is the plain run's output after byte OFF.
rest() {
	local name=$1 off=$2 f=$3
	tail -c +"$((off + 1))" "$tmp/plain" >"$tmp/$name.want"
	[[ -s $tmp/$name.want ]] || fail "$name: the snapshot came after the last output: nothing to compare"
	cmp -s "$tmp/$name.want" "$f" ||
		fail "$name: not the rest of the original from offset $off: $(diff "$tmp/$name.want" "$f" | head -n 4)"
}

# Live: the receiver restores while the snapshot is taken.
for m in uffd mprotect fork stop; do
	for c in none zstd; do
		name=$m-$c
		if ! "$vm" run "${args[@]}" --method "$m" --compress "$c" --stats \
			--snapshot-at "100:exec:'$vm' restore - >'$tmp/$name.rest' 2>'$tmp/$name.rerr'" \
			>"$tmp/$name.out" 2>"$tmp/$name.err"; then
			fail "$name: run exited non-zero: $(tail -n 3 "$tmp/$name.err"); receiver: $(tail -n 2 "$tmp/$name.rerr")"
			continue
		fi
		cmp -s "$tmp/plain" "$tmp/$name.out" || fail "$name: the run's output differs from the plain run"
		off=$(sed -n 's/.*snapshot 1: .* console_offset=\([0-9]*\) .*/\1/p' "$tmp/$name.err")
		[[ -n $off ]] || { fail "$name: --stats gave no console_offset"; continue; }
		rest "$name" "$off" "$tmp/$name.rest"
	done
done

# From a file piped in, raw and zstd: what the file's restore prints.
for c in none zstd; do
	f=$tmp/s-$c.snap
	"$vm" run "${args[@]}" --compress "$c" --snapshot-at "100:$f" >/dev/null 2>"$tmp/s.err" ||
		{ fail "$c: run with a file snapshot failed: $(tail -n 3 "$tmp/s.err")"; continue; }
	"$vm" restore "$f" >"$tmp/file-$c.rest" 2>"$tmp/file.err" || fail "$c: restore of the file failed: $(cat "$tmp/file.err")"
	# shellcheck disable=SC2002 # a pipe, not a file, on stdin
	cat "$f" | "$vm" restore - >"$tmp/pipe-$c.rest" 2>"$tmp/pipe.err" || fail "$c: restore - failed: $(cat "$tmp/pipe.err")"
	cmp -s "$tmp/file-$c.rest" "$tmp/pipe-$c.rest" || fail "$c: restore - prints other than restore of the file"
	"$vm" restore <(cat "$f") >"$tmp/fifo-$c.rest" 2>"$tmp/fifo.err" || fail "$c: restore of a named pipe failed: $(cat "$tmp/fifo.err")"
	cmp -s "$tmp/file-$c.rest" "$tmp/fifo-$c.rest" || fail "$c: restore of a named pipe prints other than of the file"
	[[ -s $tmp/file-$c.rest ]] || fail "$c: the restored guest printed nothing"
done

# bad NAME PATTERN: restore - of stdin fails, says PATTERN, runs nothing.
bad() {
	local name=$1 pat=$2 rc=0
	"$vm" restore - >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
	[[ $rc -eq 1 ]] || fail "$name: exit $rc, not 1"
	grep -qE "$pat" "$tmp/bad.err" || fail "$name: the message does not say '$pat': $(cat "$tmp/bad.err")"
	[[ ! -s $tmp/bad.out ]] || fail "$name: the guest ran: $(head -c 100 "$tmp/bad.out")"
}
f=$tmp/s-zstd.snap
size=$(stat -c %s "$f")
for n in 100 $((size / 2)) $((size - 1)); do
	head -c "$n" "$f" | bad "cut at $n of $size" "offset [0-9]+"
done
f=$tmp/s-none.snap
size=$(stat -c %s "$f")
cp "$f" "$tmp/c.snap"
printf '\xa5' | dd of="$tmp/c.snap" bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$f" "$tmp/c.snap" && fail "the byte changed was already 0xa5"
bad "a changed byte" "checksum.*offset [0-9]+|offset [0-9]+.*checksum" <"$tmp/c.snap"

# An incremental link holds only some pages: refused from a stream.
# The guest must outlast the first (full) snapshot and one period: on a
# loaded machine it may not, so a longer guest gets a second chance.
for rounds in 1000 8000; do
	rm -rf "$tmp/chain"
	"$vm" run sweep --mem 16M --rounds "$rounds" --snapshot-every "150:$tmp/chain" >/dev/null 2>"$tmp/chain.err" ||
		fail "--snapshot-every run failed: $(tail -n 3 "$tmp/chain.err")"
	[[ -f $tmp/chain/snap-0002.bgsnap ]] && break
done
if [[ -f $tmp/chain/snap-0002.bgsnap ]]; then
	bad "an incremental stream" "incremental" <"$tmp/chain/snap-0002.bgsnap"
else
	fail "the chain has no second file: $(ls "$tmp/chain")"
fi

[[ $fails -eq 0 ]] || exit 1
echo "ok: restore - live from exec: (4 methods, raw and zstd), from a pipe and a named pipe, cut, changed and incremental streams refused"
