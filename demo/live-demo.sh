#!/usr/bin/env bash
# live-demo.sh - bgsnap's live demo on the reference VM: a guest sweeps
# 128 MiB of RAM (one byte in every page, pass after pass) while bgsnap
# snapshots it in the background; the demo prints the pause and the guest's
# speed before, during and after the snapshot, does the same with a
# stop-the-world snapshot for comparison, verifies the file, restores it into
# a fresh VM and shows that the restored guest continues exactly as the
# original did.
#
# Usage: demo/live-demo.sh [GUEST] [--method M] [--at MS] [--mem SIZE]
#   GUEST      a guest from `bgsnap-vm guests` (default sweep)
#   --method   background method (default uffd)
#   --at MS    when to snapshot, ms after the guest started (default 1000)
#   --mem SIZE guest RAM (default 128M)
# Environment: BUILD (default build).  Exit status 0 when the restored run
# matches, 1 otherwise.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
vm=$BUILD/bgsnap-vm
tool=$BUILD/bgsnap
guest=sweep method=uffd at=1000 mem=128M
while (($#)); do
	case $1 in
	--method) method=$2; shift 2 ;;
	--at) at=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) guest=$1; shift ;;
	esac
done
for b in "$vm" "$tool"; do
	if [[ ! -x $b ]]; then
		echo "$b is not built: run make (bgsnap-vm needs libunicorn-dev and nasm)" >&2
		exit 1
	fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# field NAME FILE: value of NAME=... on the snapshot lines of a --stats report
field() { sed -n "s/.*snapshot 1: .*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | head -n 1; }
mega() { awk -v v="$1" 'BEGIN { if (v < 0) print "n/a"; else printf "%.2f M", v / 1e6 }'; }

run_one() { # METHOD TAG
	echo
	echo "== $guest on $mem of guest RAM, snapshot with method $1 at $at ms =="
	"$vm" run "$guest" --mem "$mem" --method "$1" --snapshot-at "$at:$tmp/$2.bgs" --stats \
		>"$tmp/$2.out" 2>"$tmp/$2.err" || { echo "run failed:"; cat "$tmp/$2.err"; exit 1; }
	sed 's/^/   guest| /' "$tmp/$2.out" | head -n 4
	echo "   guest| ..."
	tail -n 1 "$tmp/$2.out" | sed 's/^/   guest| /'
	local st sp
	st=$(grep 'snapshot 1: path=' "$tmp/$2.err")
	sp=$(grep 'snapshot 1: guest speed' "$tmp/$2.err")
	local before during after
	before=$(sed -n 's/.* before=\([^ ]*\).*/\1/p' <<<"$sp")
	during=$(sed -n 's/.* during=\([^ ]*\).*/\1/p' <<<"$sp")
	after=$(sed -n 's/.* after=\([^ ]*\).*/\1/p' <<<"$sp")
	printf '   pause (vCPU stopped)   %8.2f ms   (engine pause %s us, write-protect/fork in it %s us)\n' \
		"$(awk -v v="$(field vcpu_stopped_us <<<"$st" /dev/stdin)" 'BEGIN{print v/1000}')" \
		"$(field pause_us /dev/stdin <<<"$st")" "$(field wp_us /dev/stdin <<<"$st")"
	local pre
	pre=$(field prewp_us /dev/stdin <<<"$st")
	if [[ -n $pre && $pre != 0 ]]; then
		printf '   write-protect before the pause %s us; pages written meanwhile, protected again in it: %s\n' \
			"$pre" "$(field reprotect_pages /dev/stdin <<<"$st")"
	fi
	if [[ $(field finished_paused /dev/stdin <<<"$st") == 1 ]]; then
		# The guest lost more to its write faults than a stop of the rest
		# would cost it: the engine stopped it again to write the rest.
		printf '   finished paused        %8.2f ms   (the guest stopped again to write the rest: its faults cost more)\n' \
			"$(awk -v v="$(field finish_pause_us /dev/stdin <<<"$st")" 'BEGIN{print v/1000}')"
	fi
	printf '   snapshot total         %8s ms   (%s pages, %s copied on a guest write)\n' \
		"$(field total_ms /dev/stdin <<<"$st")" "$(field pages /dev/stdin <<<"$st")" "$(field faulted /dev/stdin <<<"$st")"
	if [[ $1 == stop ]]; then
		# Everything is written in the pause: the guest does not run meanwhile.
		printf '   guest speed (pages/s)  before %s   during: stopped   after %s (%s)\n' \
			"$(mega "$before")" "$(mega "$after")" "$(sed -n 's/.*after\/before=\([^ ]*\).*/\1/p' <<<"$sp")"
		return
	fi
	printf '   guest speed (pages/s)  before %s   during %s (%s)   after %s (%s)\n' \
		"$(mega "$before")" "$(mega "$during")" "$(sed -n 's/.*during\/before=\([^ ]*\).*/\1/p' <<<"$sp")" \
		"$(mega "$after")" "$(sed -n 's/.*after\/before=\([^ ]*\).*/\1/p' <<<"$sp")"
}

echo "bgsnap live demo: $("$vm" guests | grep "^$guest ")"
run_one "$method" live
run_one stop stop
live_total=$(field total_ms "$tmp/live.err")
stop_total=$(field total_ms "$tmp/stop.err")
live_pause=$(field vcpu_stopped_us "$tmp/live.err")
stop_pause=$(field vcpu_stopped_us "$tmp/stop.err")
live_finish=0
[[ $(field finished_paused "$tmp/live.err") == 1 ]] && live_finish=$(field finish_pause_us "$tmp/live.err")
echo
awk -v lt="$live_total" -v st="$stop_total" -v lp="$live_pause" -v sp="$stop_pause" -v lf="$live_finish" -v m="$method" 'BEGIN {
	if (lf > 0)
		printf "== %s against stop: the guest was stopped %.2f ms, then %.1f ms to finish, instead of %.1f ms;\n", m, lp / 1000, lf / 1000, sp / 1000
	else
		printf "== %s against stop: the guest was stopped %.2f ms instead of %.1f ms (%.0fx shorter);\n", m, lp / 1000, sp / 1000, sp / (lp > 0 ? lp : 1)
	printf "   the snapshot took %.0f ms in total against %.0f ms (%.2fx)\n", lt, st, lt / (st > 0 ? st : 1) }'

echo
echo "== the two runs print the same: $(cmp -s "$tmp/live.out" "$tmp/stop.out" && echo yes || echo NO)"
echo "== bgsnap verify: $("$tool" verify "$tmp/live.bgs" 2>&1)"
off=$(field console_offset "$tmp/live.err")
echo "== restore into a fresh VM: bgsnap-vm restore (the guest had printed $off bytes at the pause)"
"$vm" restore "$tmp/live.bgs" >"$tmp/rest.out" 2>"$tmp/rest.err" || { echo "restore failed:"; cat "$tmp/rest.err"; exit 1; }
sed 's/^/   restored| /' "$tmp/rest.out" | head -n 3
echo "   restored| ..."
tail -n 1 "$tmp/rest.out" | sed 's/^/   restored| /'
tail -c +"$((off + 1))" "$tmp/live.out" >"$tmp/want.out"
if diff "$tmp/want.out" "$tmp/rest.out" >"$tmp/diff"; then
	echo "== diff of the restored run against the rest of the original: identical ($(wc -c <"$tmp/rest.out") bytes)"
	exit 0
fi
echo "== the restored run DIFFERS from the rest of the original:"
head -n 20 "$tmp/diff"
exit 1
