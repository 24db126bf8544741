#!/usr/bin/env bash
# t_finish_paused.sh - a snapshot that finishes with the host paused
# (BGSNAP_PARAM_FINISH_PAUSED) still equals the memory at the first pause:
# `bgsnap bench` with uffd, uffd-signal and mprotect, 2 and 4 writer threads
# writing every page fast (random, hot, seq), the finishing pause forced
# (--finish-paused always: once a quarter of the pages is saved, with fault
# copies still in the buffer), a small and a larger copy buffer; every line
# must verify against the oracle and report finished_paused 1 with pages
# written in that pause.  Then the same with the decision left to the
# engine (--finish-paused 1: any fault wait favours the stop) and with it
# off: every line verifies; off never finishes paused.
# timeout: 600
# tags: concurrency
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
bin=$BUILD/bgsnap
if [[ ! -x $bin ]]; then
	echo "FAIL: $bin is not built"
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp

fails=0
runs=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run WANT_FINISHED ARGS...: one bench run of the three tracking methods;
# every line verifies; WANT_FINISHED: 1 every method finished paused, 0 none
# did, any: not checked.
run() {
	local want=$1 msg
	shift
	runs=$((runs + 1))
	"$bin" bench --method uffd,uffd-signal,mprotect --json --duration-after 0 --quiet "$@" \
		>"$tmp/out.json" 2>"$tmp/err"
	local rc=$?
	if ! msg=$(python3 tests/bench_check.py "$tmp/out.json" --want true --contract uffd uffd-signal mprotect); then
		fail "bench $*:"
		echo "$msg" | sed 's/^/    /'
		sed 's/^/    stderr: /' "$tmp/err" | head -n 10
		return
	fi
	((rc == 0)) || fail "bench $* exited $rc although every line verified"
	[[ -n $msg ]] && echo "$msg" | sort -u | sed "s/^/note: /"
	if ! msg=$(python3 - "$tmp/out.json" "$want" <<'PY'
import json, sys
want = sys.argv[2]
bad = []
for line in open(sys.argv[1]):
    d = json.loads(line)
    if "skipped" in d:
        continue
    m, fin, pages = d["method"], d.get("finished_paused"), d.get("finish_pages", 0)
    tot = d["pages_total"]
    print(f"{m}: finished_paused={fin} finish_pages={pages}/{tot} "
          f"finish_pause_ms={d.get('finish_pause_ms')} fault_wait_ms={d.get('fault_wait_ms')}")
    if fin is None:
        bad.append(f"{m}: no finished_paused field")
    elif want == "1" and (fin != 1 or not 0 < pages <= tot):
        bad.append(f"{m}: finished_paused={fin} finish_pages={pages}, expected a finishing pause")
    elif want == "0" and (fin != 0 or pages != 0):
        bad.append(f"{m}: finished paused although --finish-paused off")
for b in bad:
    print("BAD " + b)
sys.exit(1 if bad else 0)
PY
	); then
		fail "bench $*:"
		echo "$msg" | sed 's/^/    /'
	else
		echo "$msg" | sed "s/^/    $* | /" | cut -c1-200
	fi
}

for pattern in random hot seq; do
	run 1 --mem 16M --threads 2 --pattern "$pattern" --buffer 256K --duration-before 20 --finish-paused always
	run 1 --mem 16M --threads 4 --pattern "$pattern" --buffer 8M --duration-before 20 --finish-paused always
done
run any --mem 32M --threads 4 --pattern random --duration-before 20 --finish-paused 1
run 0 --mem 16M --threads 2 --pattern random --duration-before 20 --finish-paused off

echo "$runs bench runs, $fails failures"
((fails == 0)) || exit 1
echo ok
