#!/usr/bin/env bash
# t_dest_receiver_dies.sh - a receiver that goes away makes that snapshot
# fail cleanly: exec:true (gone before the first byte), exec:head -c 1000
# (gone after a few), a command that takes every byte and exits 3, and a
# unix: peer that closes at once.  Each time the VM is not killed by
# SIGPIPE, names the destination in its message, exits 1 (a snapshot
# failed), its guest runs to the end with the same console output as a run
# without snapshots (nothing stayed write-protected: a write to a protected
# page would stall the guest), and a later snapshot into a file, in the same
# run, succeeds and verifies.
# timeout: 300
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the unix: peer"; exit 77; }
# A destination taken for a file name would be created here, not in the tree.
cd "$tmp" || exit 1

args=(sweep --mem 32M --rounds 900)

"$vm" run "${args[@]}" >"$tmp/plain" 2>"$tmp/plain.err" || { echo "FAIL: plain run: $(tail -n 3 "$tmp/plain.err")"; exit 1; }

# dies NAME DEST WHY: the snapshot into DEST fails with a message naming
# DEST and matching WHY; the run goes on and a later one succeeds.
dies() {
	local name=$1 dest=$2 why=$3 rc=0
	rm -f "$tmp/later.snap"
	"$vm" run "${args[@]}" --snapshot-at "100:$dest" --snapshot-at "400:$tmp/later.snap" \
		>"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
	[[ $rc -eq 1 ]] || fail "$name: exit $rc, not 1 (a snapshot failed): $(tail -n 3 "$tmp/$name.err")"
	grep -qF "snapshot $dest failed: $dest: " "$tmp/$name.err" ||
		fail "$name: no failure naming the destination: $(cat "$tmp/$name.err")"
	grep -qE "$why" "$tmp/$name.err" || fail "$name: the message does not say '$why': $(cat "$tmp/$name.err")"
	cmp -s "$tmp/plain" "$tmp/$name.out" || fail "$name: the guest's console output differs from the plain run"
	"$tool" verify "$tmp/later.snap" >"$tmp/$name.v" 2>&1 ||
		fail "$name: the later snapshot does not verify: $(cat "$tmp/$name.v")"
}

dies exec-true 'exec:true' 'Broken pipe'
dies exec-head 'exec:head -c 1000 >/dev/null' 'Broken pipe'
dies exec-status 'exec:cat >/dev/null; exit 3' 'the command exited with status 3'
dies exec-signal 'exec:kill -TERM $$' 'killed by signal 15'
dies exec-missing 'exec:no-such-command-here' 'status 127'

python3 - "$tmp/sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1); s.settimeout(60)
c, _ = s.accept()
c.close()
PY
bg_pid=$!
for _ in $(seq 100); do [[ -S $tmp/sock ]] && break; sleep 0.05; done
dies unix-closes "unix:$tmp/sock" 'Broken pipe|Connection reset'
wait "$bg_pid"
bg_pid=

[[ $fails -eq 0 ]] || exit 1
echo "ok: exec:true, exec:head, exit 3, a signal, a missing command, a closing unix: peer"
