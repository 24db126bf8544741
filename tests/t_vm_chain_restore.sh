#!/usr/bin/env bash
# t_vm_chain_restore.sh - `bgsnap-vm restore DIR/LAST` of a chain: a VM
# snapshot of the sweep guest turned into a chain of two files with the
# same image (build/tests/unit/t_chain_gen --split: a full version 3 file
# and an incremental one holding every third page again and the state
# blobs) restores, eagerly and lazily, to exactly the rest of the original
# run, as the snapshot itself does; with the full file gone the restore
# fails, naming the missing parent.
# timeout: 200
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
cgen=$(realpath -m "$BUILD/tests/unit/t_chain_gen")
[[ -x $cgen ]] || { echo "SKIP: $cgen is not built"; exit 77; }

a="--mem 16M --rounds 300"
# shellcheck disable=SC2086
"$vm" run sweep $a >"$tmp/plain" 2>"$tmp/plain.err" || { echo "FAIL: plain run: $(tail -n 3 "$tmp/plain.err")"; exit 1; }
# shellcheck disable=SC2086
"$vm" run sweep $a --method stop --snapshot-at "100:$tmp/s.bgs" --stats >"$tmp/run" 2>"$tmp/run.err" ||
	{ echo "FAIL: run with a snapshot: $(tail -n 3 "$tmp/run.err")"; exit 1; }
off=$(sed -n 's/.*snapshot 1: .* console_offset=\([0-9]*\) .*/\1/p' "$tmp/run.err")
[[ -n $off ]] || { echo "FAIL: no console_offset in --stats"; exit 1; }
tail -c +"$((off + 1))" "$tmp/plain" >"$tmp/want"
[[ -s $tmp/want ]] || fail "the snapshot came after the guest's last output: nothing to compare"

mkdir "$tmp/chain"
"$cgen" --dir "$tmp/chain" --split "$tmp/s.bgs" --prefix vm || { echo "FAIL: t_chain_gen --split"; exit 1; }
"$tool" verify "$tmp/chain/vm-001.bgs" >"$tmp/v" 2>&1 || fail "verify of the chain: $(cat "$tmp/v")"
grep -q "chain of 2 files" "$tmp/v" || fail "verify did not see a chain: $(cat "$tmp/v")"

for mode in eager lazy; do
	flag=
	[[ $mode == lazy ]] && flag=--lazy
	# shellcheck disable=SC2086
	if ! "$vm" restore "$tmp/chain/vm-001.bgs" $flag >"$tmp/rest-$mode" 2>"$tmp/rest-$mode.err"; then
		fail "$mode restore of the chain: $(tail -n 3 "$tmp/rest-$mode.err")"
		continue
	fi
	cmp -s "$tmp/want" "$tmp/rest-$mode" ||
		fail "$mode restore of the chain is not the rest of the original: $(diff "$tmp/want" "$tmp/rest-$mode" | head -n 4)"
done

rm "$tmp/chain/vm-000.bgs"
"$vm" restore "$tmp/chain/vm-001.bgs" >/dev/null 2>"$tmp/miss.err"
rc=$?
[[ $rc == 1 ]] || fail "restore without the parent exits $rc, want 1"
grep -q "not found among the files of" "$tmp/miss.err" || fail "restore without the parent says: $(cat "$tmp/miss.err")"

if ((fails)); then
	echo "FAIL: $fails problems"
	exit 1
fi
echo "PASS: eager and lazy restore of a chain print the rest of the run (offset $off)"
