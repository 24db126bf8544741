#!/usr/bin/env bash
# t_cli_progress.sh - the progress line of `bgsnap verify`, `extract` and
# `diff`: under a pseudo-terminal stderr holds a percentage redrawn with
# '\r'; with stderr a file it holds no progress text unless --progress
# forces it; --quiet silences it under the terminal; exit codes and stdout
# are the same either way.
# timeout: 120
set -u
source "$(dirname "$0")/cli_lib.sh"
command -v python3 >/dev/null || { echo "skip: python3 not found"; exit 77; }

"$GEN" --out "$T/a.bgs" --pages 20000 >/dev/null || { echo "FAIL: generator"; exit 1; }
# extract fsyncs its output: a small file keeps the test quick.
"$GEN" --out "$T/small.bgs" --pages 500 >/dev/null || { echo "FAIL: generator"; exit 1; }

# under_pty OUT ERR CMD...: runs CMD with stderr a pseudo-terminal (stdout to
# OUT), what it wrote on the terminal into ERR; prints CMD's exit code.
under_pty() {
	python3 - "$@" <<'PY'
import os, subprocess, sys
out, err, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
master, slave = os.openpty()
with open(out, "wb") as o:
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=slave)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:          # EIO: every writer of the terminal is gone
        break
    if not chunk:
        break
    data += chunk
rc = p.wait(timeout=60)
open(err, "wb").write(data)
print(rc)
PY
}

has_line() { grep -qE '[0-9]+\.[0-9]%' "$1" && grep -q $'\r' "$1"; }

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

# A failing command still clears its line and keeps its exit code.
cp "$T/a.bgs" "$T/bad.bgs"
printf '\xff' | dd of="$T/bad.bgs" bs=1 seek=$(( $(stat -c %s "$T/bad.bgs") / 2 )) conv=notrunc status=none
rc=$(under_pty "$T/o1" "$T/e1" "$B" verify "$T/bad.bgs")
[ "$rc" = 1 ] || fail "verify of a damaged file under a terminal exited $rc, expected 1"
grep -q "bad.bgs" "$T/e1" || fail "verify of a damaged file: no message"

[ "$fails" = 0 ] || exit 1
echo "ok"
