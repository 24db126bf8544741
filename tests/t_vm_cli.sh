#!/usr/bin/env bash
# t_vm_cli.sh - bgsnap-vm's command line: help and usage exit codes (0, 2),
# the guest list, flat binaries from a file, refused snapshots and
# non-snapshot files (exit 1 with a message), a guest that ends before a
# scheduled snapshot (exit 1, says so).
# timeout: 120
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
expect() { # WANT_RC DESCRIPTION CMD...
	local want=$1 what=$2 rc
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	[[ $rc == "$want" ]] || fail "$what: exit $rc, want $want ($(head -c 300 "$tmp/err"))"
}

expect 0 "--help" "$vm" --help
expect 2 "no command" "$vm"
expect 2 "unknown command" "$vm" frobnicate
for c in run restore guests; do
	expect 0 "$c --help" "$vm" "$c" --help
	grep -q "usage: bgsnap-vm $c" "$tmp/out" || fail "$c --help prints no usage"
done
expect 0 "guests" "$vm" guests
for g in sweep random sieve; do
	grep -q "^$g " "$tmp/out" || fail "guests does not list $g"
done
expect 2 "run without a guest" "$vm" run
expect 2 "run of an unknown guest" "$vm" run no-such-guest
expect 2 "bad --mem" "$vm" run sweep --mem 1K
expect 2 "bad --mem" "$vm" run sweep --mem 3G
expect 2 "bad --method" "$vm" run sweep --method nope
expect 2 "bad --snapshot-at" "$vm" run sweep --snapshot-at x:y
expect 2 "bad --snapshot-at" "$vm" run sweep --snapshot-at 100
expect 2 "restore with --mem" "$vm" restore x --mem 8M
expect 1 "restore of a missing file" "$vm" restore "$tmp/none.bgs"
printf 'not a snapshot at all' >"$tmp/junk.bgs"
expect 1 "restore of a non-snapshot" "$vm" restore "$tmp/junk.bgs"
[[ -s $tmp/err ]] || fail "restore of a non-snapshot says nothing"

# A flat binary from a file: prints "hi" and halts.
printf '\x66\xba\xf8\x03\xb0\x68\xee\xb0\x69\xee\xb0\x0a\xee\xf4\xeb\xfd' >"$tmp/hi.bin"
expect 0 "run of a flat binary" "$vm" run "$tmp/hi.bin" --mem 2M
[[ $(cat "$tmp/out") == hi ]] || fail "flat binary printed '$(cat "$tmp/out")', want 'hi'"
# A guest that faults: exit 1 with the address.
printf '\x48\xc7\xc0\x00\x00\x00\x40\xc6\x00\x01\xf4' >"$tmp/fault.bin"
expect 1 "run of a faulting guest" "$vm" run "$tmp/fault.bin" --mem 2M
grep -q "rip" "$tmp/err" || fail "a faulting guest's message does not give rip: $(cat "$tmp/err")"
# A snapshot scheduled after the guest's end.
expect 1 "snapshot after the end" "$vm" run "$tmp/hi.bin" --mem 2M --snapshot-at "60000:$tmp/late.bgs"
grep -q "not taken" "$tmp/err" || fail "a late snapshot is not reported: $(cat "$tmp/err")"
[[ ! -e $tmp/late.bgs ]] || fail "a snapshot not taken left a file"
# A snapshot into a directory that does not exist fails cleanly, the run goes on.
expect 1 "snapshot into a missing directory" "$vm" run sweep --mem 8M --rounds 20 --snapshot-at "0:$tmp/no/dir/s.bgs"
grep -q "sweep done" "$tmp/out" || fail "the guest did not finish after a failed snapshot"

if ((fails)); then
	echo "FAIL: $fails problems"
	exit 1
fi
echo "PASS"
