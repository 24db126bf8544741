#!/usr/bin/env bash
# t_vm_compress.sh - the reference VM with compressed snapshots
# (`bgsnap-vm run --compress zstd`): for every built-in guest the console
# output of a run with a live compressed snapshot equals a plain run's;
# `bgsnap verify` accepts the snapshot and `bgsnap info` says it is zstd;
# `bgsnap-vm restore` and `restore --lazy` print exactly the rest of the
# original output.  Prints each guest's stored/raw ratio (non-zero pages).
# timeout: 300
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
vm=$BUILD/bgsnap-vm
tool=$BUILD/bgsnap
[[ -x $vm ]] || { echo "SKIP: $vm is not built (needs Unicorn and nasm)"; exit 77; }
[[ -x $tool ]] || { echo "FAIL: $tool is not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

declare -A args=(
	[sweep]="--mem 32M --rounds 600"
	[random]="--mem 32M --rounds 2"
	[sieve]="--mem 8M --rounds 2"
)
probe=$tmp/probe.bgs
if ! "$vm" run sweep --mem 8M --rounds 20 --compress zstd --snapshot-at 0:"$probe" >/dev/null 2>"$tmp/probe.err"; then
	grep -q "without libzstd" "$tmp/probe.err" && { echo "SKIP: this bgsnap was built without libzstd"; exit 77; }
fi
for g in $("$vm" guests | awk '{print $1}'); do
	a=${args[$g]:-"--mem 32M"}
	s=$tmp/$g.bgs
	# shellcheck disable=SC2086
	"$vm" run "$g" $a >"$tmp/$g.plain" 2>/dev/null || { fail "$g: plain run failed"; continue; }
	# shellcheck disable=SC2086
	if ! "$vm" run "$g" $a --compress zstd --snapshot-at "100:$s" --stats >"$tmp/$g.out" 2>"$tmp/$g.err"; then
		fail "$g: run with a compressed snapshot failed: $(tail -n 3 "$tmp/$g.err")"
		continue
	fi
	cmp -s "$tmp/$g.plain" "$tmp/$g.out" || fail "$g: output with a snapshot differs from the plain run"
	"$tool" verify "$s" >"$tmp/v.out" 2>&1 || { fail "$g: verify: $(cat "$tmp/v.out")"; continue; }
	"$tool" info --json "$s" >"$tmp/$g.json" || fail "$g: info failed"
	ratio=$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["compress"]=="zstd"; print("%.3f raw %d stored %d file %d" % (o["ratio"], o["raw_bytes"], o["stored_bytes"], o["file_bytes"]))' "$tmp/$g.json") ||
		fail "$g: info --json does not say zstd: $(cat "$tmp/$g.json")"
	off=$(sed -n 's/.*snapshot 1: .* console_offset=\([0-9]*\) .*/\1/p' "$tmp/$g.err")
	[[ -n $off ]] || { fail "$g: --stats gave no console_offset"; continue; }
	tail -c +"$((off + 1))" "$tmp/$g.plain" >"$tmp/$g.want"
	for how in eager lazy; do
		flag=; [[ $how == lazy ]] && flag=--lazy
		# shellcheck disable=SC2086
		if ! "$vm" restore "$s" $flag >"$tmp/$g.$how" 2>"$tmp/$g.$how.err"; then
			fail "$g: $how restore failed: $(tail -n 3 "$tmp/$g.$how.err")"
		else
			cmp -s "$tmp/$g.want" "$tmp/$g.$how" || fail "$g: $how restore output is not the rest of the original"
		fi
	done
	echo "ok $g: compressed stored/raw $ratio"
done
((fails == 0)) || exit 1
echo PASS
