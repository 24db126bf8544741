#!/usr/bin/env bash
# t_consistency.sh - every snapshot equals the memory at the pause instant:
# `bgsnap bench` with every method (uffd, uffd-signal, mprotect, fork, stop), 1, 2 and 4 writer threads,
# every pattern, a copy buffer of one page (maximal back-pressure, and pages
# never populated before the pause) and of 8 MiB, plus fault-around runs and
# a write-protect split over threads; each result line must be valid JSON with the contract's fields and
# "verified": true.  Then the verification itself is shown to fail on wrong
# step counts, a damaged page and a damaged file, and bad usage exits 2.
# timeout: 300
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
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check_json FILE WANT_VERIFIED METHOD... : every method has exactly one valid
# line; verified equals WANT_VERIFIED unless the method was skipped (refused by
# this kernel), which is reported.  Prints problems, exits 1 on any.
check_json() {
	local file=$1 want=$2
	shift 2
	python3 tests/bench_check.py "$file" --want "$want" --contract "$@"
}

runs=0
# bench_verified LABEL "METHOD..." ARGS...: one bench run in which every
# listed method has one line and verifies; notes about methods this kernel
# refused are printed once, after LABEL.
bench_verified() {
	local label=$1 methods=$2 msg rc
	shift 2
	"$bin" "$@" >"$tmp/out.json" 2>"$tmp/err"
	rc=$?
	runs=$((runs + 1))
	# shellcheck disable=SC2086
	if ! msg=$(check_json "$tmp/out.json" true $methods); then
		fail "bgsnap $*:"
		echo "$msg" | sed 's/^/    /'
		sed 's/^/    stderr: /' "$tmp/err" | head -n 10
	elif ((rc != 0)); then
		fail "bgsnap $* exited $rc although every line verified"
	elif [[ -n $msg ]]; then
		echo "$msg" | sort -u | sed "s/^/$label: /"
	fi
}
# Reduced (the sanitizer stages): the most racing corner, 4 writers, only.
threads_list="1 2 4"
[[ ${BGSNAP_TEST_REDUCED:-0} == 1 ]] && threads_list=4
for threads in $threads_list; do
	for pattern in seq random hot; do
		for buffer in 4K 8M; do
			args=(bench --mem 16M --threads "$threads" --pattern "$pattern" --buffer "$buffer"
			      --method all --json --duration-after 0)
			# With one page of buffer, also leave the initially zero pages
			# never-populated until the pause: first writes to them during
			# the snapshot must be caught too.
			if [[ $buffer == 4K ]]; then
				args+=(--no-prefault --duration-before 0)
			else
				args+=(--duration-before 20)
			fi
			bench_verified "t=$threads $pattern $buffer" "uffd uffd-signal mprotect fork stop" "${args[@]}"
		done
	done
done
# Fault-around (a fault saves the aligned block around its page) for the
# three tracking methods, every pattern, a small buffer.
for pattern in seq random hot; do
	bench_verified "fault-around $pattern" "uffd uffd-signal mprotect" \
		bench --mem 16M --threads 2 --pattern "$pattern" --buffer 256K --fault-around 16 \
		--method uffd,uffd-signal,mprotect --duration-before 20 --duration-after 0 --json
done
# The write-protect split over helper threads, and the sweep's window over
# a region of several windows.
bench_verified "wp-threads 3" "uffd uffd-signal" \
	bench --mem 64M --threads 2 --pattern random --buffer 1M --wp-threads 3 \
	--method uffd,uffd-signal --duration-before 20 --duration-after 0 --json
echo "consistency: $runs bench runs of every method"

# A check that can fail is shown to fail: each damage must give verified:false
# and exit 1.
for mode in steps page file; do
	out=$tmp/corrupt.json
	"$bin" bench --mem 4M --threads 2 --method uffd,stop --duration-before 10 --json \
		--corrupt-check "$mode" >"$out" 2>"$tmp/err"
	rc=$?
	if ! msg=$(check_json "$out" false uffd stop); then
		fail "--corrupt-check $mode was not caught:"
		echo "$msg" | sed 's/^/    /'
	elif ((rc != 1)); then
		fail "--corrupt-check $mode: exit $rc, expected 1"
	elif [[ $mode != file ]] && ! grep -q "differs at byte" "$tmp/err"; then
		fail "--corrupt-check $mode: no mismatching page was reported on stderr"
	fi
done

# --out with several methods keeps one file per method, PATH.METHOD.
if "$bin" bench --mem 4M --threads 1 --method fork,stop --duration-before 5 --json \
	--out "$tmp/keep.snap" >"$tmp/keep.json" 2>"$tmp/err"; then
	for m in fork stop; do
		if [[ ! -s $tmp/keep.snap.$m ]]; then
			fail "--out with fork,stop: $tmp/keep.snap.$m was not kept"
		elif ! "$bin" verify "$tmp/keep.snap.$m" >/dev/null 2>"$tmp/err"; then
			fail "bgsnap verify $tmp/keep.snap.$m: $(cat "$tmp/err")"
		fi
	done
else
	fail "bench --out with fork,stop failed: $(cat "$tmp/err")"
fi
# Without --out nothing is left behind.
leftover=$(find "$tmp" -name 'bgsnap-bench.*' | head -n 3)
[[ -z $leftover ]] || fail "snapshot files left behind: $leftover"

# --probe-wp alone prints one JSON line of raw primitive times; the human
# table mode works too.
if ! "$bin" bench --mem 4M --probe-wp --json >"$tmp/probe.json" 2>"$tmp/err" ||
	! python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
o = json.loads(lines[0])
assert o["probe"] == "raw" and o["mem_bytes"] == 4 << 20, o
# -1: the primitive cannot run here (no userfaultfd, say)
assert all(o[k] > 0 or o[k] == -1 for k in ("wp_us", "unwp_us", "mprotect_us", "mprotect_rw_us", "fork_us")), o
assert o["mprotect_us"] > 0 and o["mprotect_rw_us"] > 0 and o["fork_us"] > 0, o' "$tmp/probe.json"; then
	fail "bench --probe-wp --json: $(cat "$tmp/probe.json" "$tmp/err")"
fi
if ! "$bin" bench --mem 4M --threads 1 --method stop,uffd --duration-before 5 >"$tmp/table.txt" 2>"$tmp/err" ||
	! grep -q '^stop .* yes$' "$tmp/table.txt"; then
	fail "bench table mode: $(cat "$tmp/table.txt" "$tmp/err")"
fi

# Bad usage exits 2; --help exits 0.
# --repeat: every round verified and numbered, and each summary median is
# the median of the ratios taken within the rounds' lines.
if "$bin" bench --mem 4M --threads 2 --method uffd,stop --repeat 3 --duration-before 5 --json \
	>"$tmp/rep.json" 2>"$tmp/err"; then
	if ! msg=$(python3 - "$tmp/rep.json" <<'EOF'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
runs = [o for o in lines if not o.get("summary")]
summ = {o["method"]: o for o in lines if o.get("summary")}
bad = []
for m in ("uffd", "stop"):
    rounds = sorted(o["round"] for o in runs if o["method"] == m)
    if rounds != [1, 2, 3]:
        bad.append("%s: rounds %s, expected 1..3" % (m, rounds))
    if any(not o.get("verified") for o in runs if o["method"] == m):
        bad.append("%s: a round did not verify" % m)
    if m not in summ or summ[m].get("rounds") != 3:
        bad.append("%s: no summary line for 3 rounds" % m)
ratios = []
for r in (1, 2, 3):
    u = [o for o in runs if o["method"] == "uffd" and o["round"] == r]
    s = [o for o in runs if o["method"] == "stop" and o["round"] == r]
    if u and s:
        ratios.append(u[0]["total_ms"] / s[0]["total_ms"])
got = summ.get("uffd", {}).get("total_over_stop_median")
want = statistics.median(ratios) if len(ratios) == 3 else None
if want is None:
    bad.append("uffd or stop missing from a round")
elif got is None or abs(got - want) > 2e-3 * want + 1e-3:
    bad.append("uffd total_over_stop_median %s, the rounds give %s (median of %s)" % (got, want, ratios))
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	); then
		fail "bench --repeat 3:"
		echo "$msg" | sed 's/^/    /'
	fi
else
	fail "bench --repeat 3 failed: $(head -n 5 "$tmp/err")"
fi

for bad in "--threads 0" "--pattern zigzag" "--method nope" "--mem 12345" "--bogus" "extra" "--repeat 0" "--repeat 51"; do
	# shellcheck disable=SC2086
	"$bin" bench $bad >/dev/null 2>&1
	rc=$?
	((rc == 2)) || fail "bgsnap bench $bad exited $rc, expected 2"
done
"$bin" bench --help >/dev/null 2>&1 || fail "bgsnap bench --help did not exit 0"

if ((fails)); then
	echo "t_consistency: $fails failures"
	exit 1
fi
echo "t_consistency: ok"
exit 0
