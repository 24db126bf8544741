#!/usr/bin/env bash
# t_cli_progress.sh - the progress line of `bgsnap verify`, `extract` and
# `diff` (and of `bench --out exec:` under a terminal): under a
# pseudo-terminal stderr holds a percentage redrawn with
# '\r'; with stderr a file it holds no progress text unless --progress
# forces it; --quiet silences it under the terminal; exit codes and stdout
# are the same either way.
# timeout: 120
set -u
source "$(dirname "$0")/cli_lib.sh"
command -v python3 >/dev/null || { echo "skip: python3 not found"; exit 77; }
source "$(dirname "$0")/pty_lib.sh"
export PTY_TIMEOUT=60

"$GEN" --out "$T/a.bgs" --pages 20000 >/dev/null || { echo "FAIL: generator"; exit 1; }
# extract fsyncs its output: a small file keeps the test quick.
"$GEN" --out "$T/small.bgs" --pages 500 >/dev/null || { echo "FAIL: generator"; exit 1; }

# check NAME WANT_RC CMD...: the four ways of running CMD
check() {
	local name=$1 want=$2; shift 2
	local rc
	rc=$(under_pty "$T/o1" "$T/e1" "$@")
	[ "$rc" = "$want" ] || fail "$name under a terminal exited $rc, expected $want"
	has_line "$T/e1" || fail "$name under a terminal: no progress line; stderr: $(head -c 200 "$T/e1" | od -c | head -3)"
	expect "$want" "$@"
	cp "$T/out" "$T/o2"
	grep -qE '%|MB/s|\r' "$T/err" && fail "$name with stderr a file wrote progress: $(head -c 200 "$T/err")"
	cmp -s "$T/o1" "$T/o2" || fail "$name: stdout differs under a terminal"
	expect "$want" "$@" --progress
	has_line "$T/err" || fail "$name --progress to a file: no progress line"
	rc=$(under_pty "$T/o1" "$T/e1" "$@" --quiet)
	[ "$rc" = "$want" ] || fail "$name --quiet exited $rc, expected $want"
	grep -qE '%|MB/s|\r' "$T/e1" && fail "$name --quiet under a terminal wrote progress: $(head -c 200 "$T/e1")"
	true
}

check verify 0 "$B" verify "$T/a.bgs"
check "extract --elf" 0 "$B" extract "$T/small.bgs" --elf -o "$T/core" --force
check "extract --region" 0 "$B" extract "$T/small.bgs" --region ram0 -o "$T/img" --force
check diff 0 "$B" diff "$T/a.bgs" "$T/a.bgs"

# bench into a stream destination draws its line too (paced to last ~0.5 s).
rc=$(under_pty "$T/o1" "$T/e1" "$B" bench --mem 8M --threads 1 --duration-before 0 --duration-after 0 \
	--max-rate 16M --out 'exec:cat >/dev/null')
[ "$rc" = 0 ] || fail "bench --out exec: under a terminal exited $rc: $(tr '\r' '\n' <"$T/e1" | tail -n 3)"
{ has_line "$T/e1" && grep -q 'snapshot: ' "$T/e1"; } ||
	fail "bench --out exec: under a terminal: no snapshot progress line: $(head -c 200 "$T/e1" | od -c | head -3)"

# A failing command still clears its line and keeps its exit code.
cp "$T/a.bgs" "$T/bad.bgs"
printf '\xff' | dd of="$T/bad.bgs" bs=1 seek=$(( $(stat -c %s "$T/bad.bgs") / 2 )) conv=notrunc status=none
rc=$(under_pty "$T/o1" "$T/e1" "$B" verify "$T/bad.bgs")
[ "$rc" = 1 ] || fail "verify of a damaged file under a terminal exited $rc, expected 1"
grep -q "bad.bgs" "$T/e1" || fail "verify of a damaged file: no message"

[ "$fails" = 0 ] || exit 1
echo "ok"
