#!/usr/bin/env bash
# t_vm_progress.sh - the progress line of bgsnap-vm: a snapshot taken by
# `run`, an eager `restore` and a `restore --lazy` each draw a percentage
# redrawn with '\r' on stderr under a pseudo-terminal; with stderr a file
# there is no progress text unless --progress forces it; --quiet silences
# it under the terminal; the guest's console (stdout) is the same either
# way.  The snapshot's writer is rate-limited so that it lasts long enough
# to be drawn.
# timeout: 300
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
command -v python3 >/dev/null || { echo "skip: python3 not found"; exit 77; }
source tests/pty_lib.sh

# check NAME WORD CMD...: the four ways of running CMD; WORD must label the line
check() {
	local name=$1 word=$2; shift 2
	local rc
	rc=$(under_pty "$tmp/o1" "$tmp/e1" "$@")
	[[ $rc == 0 ]] || { fail "$name under a terminal exited $rc: $(tr '\r' '\n' <"$tmp/e1" | tail -n 3)"; return; }
	has_line "$tmp/e1" || fail "$name under a terminal: no progress line; stderr: $(head -c 300 "$tmp/e1" | od -c | head -4)"
	grep -q "$word: " "$tmp/e1" || fail "$name under a terminal: no '$word:' line: $(head -c 200 "$tmp/e1")"
	"$@" >"$tmp/o2" 2>"$tmp/e2" || fail "$name with stderr a file failed: $(tail -n 3 "$tmp/e2")"
	no_line "$tmp/e2" || fail "$name with stderr a file wrote progress: $(head -c 200 "$tmp/e2")"
	cmp -s "$tmp/o1" "$tmp/o2" || fail "$name: the console differs under a terminal"
	"$@" --progress >"$tmp/o2" 2>"$tmp/e2" || fail "$name --progress failed: $(tail -n 3 "$tmp/e2")"
	has_line "$tmp/e2" || fail "$name --progress to a file: no progress line"
	rc=$(under_pty "$tmp/o1" "$tmp/e1" "$@" --quiet)
	[[ $rc == 0 ]] || fail "$name --quiet exited $rc"
	no_line "$tmp/e1" || fail "$name --quiet under a terminal wrote progress: $(head -c 200 "$tmp/e1")"
}

snap=$tmp/s.bgs
check "run with a snapshot" snapshot "$vm" run sweep --mem 32M --rounds 600 --method uffd --max-rate 40M \
	--compress zstd --snapshot-at "100:$snap"
"$tool" verify "$snap" >/dev/null 2>&1 || fail "the snapshot does not verify"
check restore restore "$vm" restore "$snap"
check "restore --lazy" restore "$vm" restore "$snap" --lazy
((fails == 0)) || exit 1
echo "PASS"
