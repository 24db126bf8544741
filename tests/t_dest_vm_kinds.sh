#!/usr/bin/env bash
# t_dest_vm_kinds.sh - bgsnap-vm writes a live snapshot into every kind of
# destination, and each arrives whole: a bare path and file:PATH, exec: into
# `bgsnap verify -` (checked while it is taken), exec: into `cat > f`,
# unix: into a small listener that saves what it receives, and fd:3 given
# by the shell (3>f).  Every received snapshot passes `bgsnap verify`, and
# the guest's console output equals a run without a snapshot.
# timeout: 300
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the unix: listener"; exit 77; }
# A destination taken for a file name would be created here, not in the tree.
cd "$tmp" || exit 1

args=(sweep --mem 32M --rounds 600)

"$vm" run "${args[@]}" >"$tmp/plain" 2>"$tmp/plain.err" || { echo "FAIL: plain run: $(tail -n 3 "$tmp/plain.err")"; exit 1; }

# run NAME DEST: a run with one snapshot into DEST at 100 ms succeeds and
# prints what the plain run prints.
run() {
	local name=$1 dest=$2
	if ! "$vm" run "${args[@]}" --snapshot-at "100:$dest" >"$tmp/$name.out" 2>"$tmp/$name.err"; then
		fail "$name: run with --snapshot-at 100:$dest failed: $(tail -n 3 "$tmp/$name.err")"
		return 1
	fi
	cmp -s "$tmp/plain" "$tmp/$name.out" || fail "$name: console output differs from the plain run"
	return 0
}
verified() {
	local name=$1 f=$2
	[[ -f $f ]] || { fail "$name: $f was not written"; return; }
	"$tool" verify "$f" >"$tmp/$name.v" 2>&1 || fail "$name: verify $f: $(cat "$tmp/$name.v")"
	[[ $(stat -c %a "$f") == 600 || $name != file* ]] || fail "$name: $f has mode $(stat -c %a "$f"), not 600"
}

run file "$tmp/a.snap" && verified file "$tmp/a.snap"
run file-scheme "file:$tmp/b:with:colons.snap" && verified file-scheme "$tmp/b:with:colons.snap"
# A path with ':' and no known scheme is a file.
"$vm" run "${args[@]}" --snapshot-at "100:x:y.snap" >/dev/null 2>"$tmp/xy.err" ||
	fail "x:y.snap: $(tail -n 2 "$tmp/xy.err")"
verified colon-path "$tmp/x:y.snap"

# exec: into verify -: the verdict is printed on the VM's stdout, after the
# console output of the guest so far.
if "$vm" run "${args[@]}" --snapshot-at "100:exec:$tool verify -" >"$tmp/ev.out" 2>"$tmp/ev.err"; then
	grep -q '^-: OK, 8192 pages' "$tmp/ev.out" || fail "exec verify -: no OK verdict: $(grep -a 'OK\|-:' "$tmp/ev.out" | head -n 2)"
	grep -v '^-: OK' "$tmp/ev.out" | cmp -s "$tmp/plain" - || fail "exec verify -: console output differs"
else
	fail "exec verify -: run failed: $(tail -n 3 "$tmp/ev.err")"
fi

run exec-cat "exec:cat > '$tmp/c.snap'" && verified exec-cat "$tmp/c.snap"

# unix: a listener that saves one connection's bytes.
python3 - "$tmp/sock" "$tmp/u.snap" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1); s.settimeout(60)
c, _ = s.accept()
with open(sys.argv[2], "wb") as f:
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        f.write(b)
PY
bg_pid=$!
for _ in $(seq 100); do [[ -S $tmp/sock ]] && break; sleep 0.05; done
run unix "unix:$tmp/sock"
wait "$bg_pid" || fail "unix: the listener failed"
bg_pid=
verified unix "$tmp/u.snap"

if "$vm" run "${args[@]}" --snapshot-at 100:fd:3 3>"$tmp/d.snap" >"$tmp/fd.out" 2>"$tmp/fd.err"; then
	cmp -s "$tmp/plain" "$tmp/fd.out" || fail "fd:3: console output differs"
	verified fd "$tmp/d.snap"
else
	fail "fd:3: run failed: $(tail -n 3 "$tmp/fd.err")"
fi

[[ $fails -eq 0 ]] || exit 1
echo "ok: file, file:, a path with ':', exec: verify -, exec: cat, unix:, fd:3"
