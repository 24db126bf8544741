#!/usr/bin/env bash
# vm-speed.sh - guest speed under a live snapshot, method against method, on
# the reference VM: runs GUEST (default sweep, 128 MiB) REPEAT times per
# method with one snapshot at 1 s and prints the medians of the pause, the
# snapshot's total time, and the guest's speed during and after the snapshot
# relative to the second before it (ratios measured within each run, as
# the machine is shared and noisy).
#
# Usage: demo/vm-speed.sh [--guest G] [--repeat N] [--methods "uffd fork stop"] [--no-thp]
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
vm=$BUILD/bgsnap-vm
guest=sweep repeat=3 methods="uffd uffd-signal fork stop" extra=()
while (($#)); do
	case $1 in
	--guest) guest=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--methods) methods=$2; shift 2 ;;
	--no-thp) extra+=(--no-thp); shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
[[ -x $vm ]] || { echo "$vm is not built" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-12s %12s %12s %12s %10s %10s %9s\n' method vcpu_stop_ms engine_pause_ms total_ms during% after% faulted
for m in $methods; do
	: >"$tmp/rows"
	for ((i = 0; i < repeat; i++)); do
		if ! "$vm" run "$guest" "${extra[@]}" --method "$m" --snapshot-at "1000:$tmp/s.bgs" --stats >"$tmp/out" 2>"$tmp/err"; then
			echo "$m: run failed: $(tail -n 2 "$tmp/err")" >&2
			continue
		fi
		awk '/snapshot 1: path=/ {
			for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			printf "%s %s %s %s ", f["vcpu_stopped_us"] / 1000, f["pause_us"] / 1000, f["total_ms"], f["faulted"] }
		/snapshot 1: guest speed/ {
			for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
			d = f["during/before"]; a = f["after/before"]; sub("%", "", d); sub("%", "", a)
			printf "%s %s\n", d, a }' "$tmp/err" >>"$tmp/rows"
		rm -f "$tmp/s.bgs"
	done
	col() { awk -v c="$1" '{ print $c }' "$tmp/rows" | median; }
	printf '%-12s %12s %12s %12s %10s %10s %9s\n' "$m" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 5)" "$(col 6)" "$(col 4)"
done
echo "(medians of $repeat runs of $guest ${extra[*]}; during% and after% are the guest's speed relative to the second before the pause)"
