#!/usr/bin/env bash
# host-cost.sh - what a snapshot costs the program being snapshotted, method
# against method: every bench pattern (one writer thread over SIZE) and every
# reference-VM guest (VM_MEM of huge-page RAM, one snapshot at 2 s, past the
# guest's start-up, whose speed is not yet steady), with
# each method, ROUNDS rounds; prints the median over the rounds of each ratio
# taken within a round (the machine is shared and noisy):
#   lost/stop     host_lost(method) / host_lost(stop)   (the host's work lost:
#                 50 ms windows from the pause until its rate is back within
#                 5 % of the rate before for two windows, or 5 s after the end,
#                 of (1 - rate/rate_before) x window; for stop, its pause)
#   total/stop    snapshot time / stop's
#   pause/fork    pause / fork's pause (VM: the vCPU's stop, hooks included)
#   after/before  the host's rate in the second after the end / before
#
# Usage: bench/host-cost.sh SIZE          (e.g. 1G)
# Environment:
#   BUILD=build  ROUNDS=3  METHODS="uffd uffd-signal mprotect fork stop"
#   PATTERNS="random seq hot"  GUESTS="sweep random sieve"  VM_MEM=128M
#                    (an empty PATTERNS or GUESTS skips that part)
#   BEFORE_MS=1000   the bench's rate window before each snapshot
#   BENCH_ARGS=...   more `bgsnap bench` options (e.g. "--fault-around 4", or
#                    "--finish-paused 100" for the engine finishing paused when the
#                    host's faults cost it more than a stop would)
#   VM_ARGS=...      more `bgsnap-vm run` options (e.g. "--no-thp")
#   KEEP=DIR         keep the raw JSON lines and VM reports in DIR
# Bounded: the bench part is 3 x ROUNDS x 5 snapshots of SIZE, the VM part
# 3 x ROUNDS x 5 guest runs of 8-12 s (each cut at 180 s).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
bin=$BUILD/bgsnap
vm=$BUILD/bgsnap-vm
ROUNDS=${ROUNDS:-3}
METHODS=${METHODS:-uffd uffd-signal mprotect fork stop}
PATTERNS=${PATTERNS-random seq hot}
GUESTS=${GUESTS-sweep random sieve}
VM_MEM=${VM_MEM:-128M}
BEFORE_MS=${BEFORE_MS:-1000}
BENCH_ARGS=${BENCH_ARGS:-}
VM_ARGS=${VM_ARGS:-}
if (($# != 1)) || [[ $1 == -h || $1 == --help ]]; then
	sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	(($# == 1)) && exit 0
	exit 2
fi
size=$1
[[ -x $bin ]] || { echo "$bin is not built (make -j2 all)" >&2; exit 1; }
dir=${KEEP:-$(mktemp -d)}
mkdir -p "$dir"
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$dir"' EXIT
: >"$dir/bench.jsonl"
: >"$dir/vm.txt"
list=${METHODS// /,}

for p in $PATTERNS; do
	echo "bench $size $p: $ROUNDS rounds of $list ..." >&2
	# shellcheck disable=SC2086
	if ! "$bin" bench --mem "$size" --threads 1 --pattern "$p" --method "$list" --repeat "$ROUNDS" \
		--duration-before "$BEFORE_MS" --json $BENCH_ARGS >"$dir/b.jsonl" 2>"$dir/b.err"; then
		echo "bench $p failed or did not verify: $(tail -n 3 "$dir/b.err")" >&2
	fi
	sed "s/^{/{\"set\":\"$p\",/" "$dir/b.jsonl" >>"$dir/bench.jsonl"
done

# Guest lengths: long enough for 2 s before, the snapshot and the 5 s tail.
rounds_of() { case $1 in sweep) echo 1000 ;; *) echo 0 ;; esac; }
if [[ -x $vm && -n $GUESTS ]]; then
	for ((r = 1; r <= ROUNDS; r++)); do
		for g in $GUESTS; do
			for m in $METHODS; do
				echo "vm $g $m round $r ..." >&2
				# shellcheck disable=SC2086
				timeout 180 "$vm" run "$g" --mem "$VM_MEM" --rounds "$(rounds_of "$g")" --method "$m" \
					--snapshot-at "2000:$dir/s.bgs" --stats $VM_ARGS >/dev/null 2>"$dir/v.err" ||
					echo "vm $g $m failed: $(tail -n 2 "$dir/v.err")" >&2
				sed -n "s/^bgsnap-vm: snapshot 1: /$g $m $r /p" "$dir/v.err" >>"$dir/vm.txt"
				rm -f "$dir/s.bgs"
			done
		done
	done
elif [[ -n $GUESTS ]]; then
	echo "$vm is not built: no VM guests" >&2
fi

python3 - "$dir/bench.jsonl" "$dir/vm.txt" "$size" "$VM_MEM" "$ROUNDS" "$METHODS" <<'EOF'
import json, sys, statistics
bench, vmtxt, size, vm_mem, rounds, methods = sys.argv[1:7]
methods = methods.split()

def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None

def fmt(x, w=9):
    return f"{x:>{w}.3g}" if x is not None else f"{'-':>{w}}"

def ratios(rows, key, base):
    out = []
    for r in rows:
        a, b = r.get(m, {}).get(key), r.get(base, {}).get(key)
        out.append(a / b if a is not None and b else None)
    return med(out)

# Per pattern, per round: method -> its JSON line.
bruns = {}
for line in open(bench):
    j = json.loads(line)
    if j.get("summary") or "pause_us" not in j:
        continue
    d = bruns.setdefault(j["set"], {}).setdefault(j.get("round", 1), {})
    d[j["method"]] = {"lost": j.get("host_lost_ms"), "total": j.get("total_ms"), "pause": j.get("pause_us"),
                      "ab": j["writes_per_s_after"] / j["writes_per_s_before"] if j.get("writes_per_s_before") else None,
                      "faulted": j.get("pages_faulted")}
print(f"## bench {size}, 1 writer thread (median of {rounds} rounds of ratios within a round)\n")
print("| pattern | method | lost_ms | lost/stop | total/stop | pause/fork | after/before | faulted |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for p, rs in bruns.items():
    rows = list(rs.values())
    for m in methods:
        print(f"| {p} | {m} | {fmt(med([r.get(m, {}).get('lost') for r in rows]))} | {fmt(ratios(rows, 'lost', 'stop'))} | "
              f"{fmt(ratios(rows, 'total', 'stop'))} | {fmt(ratios(rows, 'pause', 'fork'))} | "
              f"{fmt(med([r.get(m, {}).get('ab') for r in rows]))} | {fmt(med([r.get(m, {}).get('faulted') for r in rows]))} |")

runs = {}
for line in open(vmtxt):
    w = line.split()
    guest, method, rnd = w[0], w[1], w[2]
    f = {}
    for tok in w[3:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            f[k] = v.rstrip("%")
    d = runs.setdefault((guest, int(rnd)), {}).setdefault(method, {})
    for k in ("vcpu_stopped_us", "total_ms", "lost_ms", "after/before", "faulted"):
        if k in f:
            try:
                d[k] = float(f[k])
            except ValueError:
                pass
if runs:
    print(f"\n## bgsnap-vm, {vm_mem} huge-page RAM, snapshot at 2 s (median of {rounds} rounds)\n")
    print("| guest | method | lost_ms | lost/stop | total/stop | pause/fork | after/before | faulted |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for guest in sorted({g for g, _ in runs}, key=lambda x: ["sweep", "random", "sieve"].index(x) if x in ("sweep", "random", "sieve") else 9):
        rr = [runs[k] for k in runs if k[0] == guest]
        for m in methods:
            lost = med([r.get(m, {}).get("lost_ms") for r in rr])
            ab = med([r.get(m, {}).get("after/before") for r in rr])
            fl = med([r.get(m, {}).get("faulted") for r in rr])
            print(f"| {guest} | {m} | {fmt(lost)} | {fmt(ratios(rr, 'lost_ms', 'stop'))} | {fmt(ratios(rr, 'total_ms', 'stop'))} | "
                  f"{fmt(ratios(rr, 'vcpu_stopped_us', 'fork'))} | {fmt(ab / 100 if ab is not None else None)} | {fmt(fl)} |")
EOF
