#!/usr/bin/env bash
# contention.sh - what a running workload costs a save on this machine,
# whatever the method: the stop-the-world save of SIZE (host paused, nothing
# else runs) against the same save while another process writes random
# 4 KiB pages of its own SIZE of memory on the other CPU (bench --noise).
# A background snapshot always saves beside a running host, so its total
# time cannot beat the second number, while the stop method's total time
# (what a background snapshot is usually compared with) is the first.  Runs alternate (quiet, noise, quiet, ...) because
# these machines drift.  THP=1 makes both memories transparent huge pages.
#
# Usage: bench/contention.sh [SIZE] [ROUNDS]     (default 2G 3)
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
bin=$BUILD/bgsnap
size=${1:-2G}
rounds=${2:-3}
thp=()
[[ ${THP:-0} == 1 ]] && thp=(--thp)
if [[ ! -x $bin ]]; then
	echo "contention: $bin is not built (run make)" >&2
	exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
	for noise in "" --noise; do
		echo "contention: round $i ${noise:-quiet} ..." >&2
		"$bin" bench --mem "$size" --threads 1 --pattern random --method stop --json \
			--duration-before 100 "${thp[@]}" $noise >>"$out" || exit 1
	done
done
python3 - "$out" "$size" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
quiet = [r["total_ms"] for r in rows if not r.get("noise")]
noisy = [r["total_ms"] for r in rows if r.get("noise")]
bad = [r for r in rows if not r.get("verified")]
print(f"| stop-the-world save of {sys.argv[2]} | total ms (each round) | median |")
print("|---|---|---:|")
print(f"| host paused, nothing else runs | {', '.join(f'{v:.0f}' for v in quiet)} | {statistics.median(quiet):.0f} |")
print(f"| another process writes random pages beside it | {', '.join(f'{v:.0f}' for v in noisy)} | {statistics.median(noisy):.0f} |")
ratios = [n / q for q, n in zip(quiet, noisy)]
print(f"\nnoise / quiet, round by round: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
if bad:
    print(f"{len(bad)} snapshot(s) did not verify", file=sys.stderr)
    sys.exit(1)
EOF
