#!/usr/bin/env bash
# t_dest_vm_methods.sh - every snapshot method of bgsnap-vm into every kind
# of destination, compression on and off: for each method (uffd,
# uffd-signal, mprotect, fork, stop) a snapshot into a file, exec:cat,
# unix: (a listener that saves what it receives) and fd:3, half of them
# zstd, the exec: ones paced (--max-rate); each run prints what a run without snapshots prints and each
# received snapshot verifies.  Then per method: a receiver that exits
# early (exec:head -c 4096) fails that snapshot with "Broken pipe" naming
# it, exit 1, while the guest runs to the end with the plain output
# (nothing stayed write-protected: the guest would stall).
# timeout: 300
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the unix: listener"; exit 77; }
# A destination taken for a file name would be created here, not in the tree.
cd "$tmp" || exit 1

args=(sweep --mem 16M --rounds 300)
methods=(uffd uffd-signal mprotect fork stop)
kinds=(file exec unix fd)

"$vm" run "${args[@]}" >"$tmp/plain" 2>"$tmp/plain.err" || { echo "FAIL: plain run: $(tail -n 3 "$tmp/plain.err")"; exit 1; }

# listen FILE: a unix: listener at $tmp/sock saving one connection to FILE.
listen() {
	rm -f "$tmp/sock"
	python3 - "$tmp/sock" "$1" <<'PY' &
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
}

i=0
for m in "${methods[@]}"; do
	for k in "${kinds[@]}"; do
		i=$((i + 1))
		# Compression alternates so that each method and each kind
		# sees both.
		c=none
		(( (i + ${#m}) % 2 )) && c=zstd
		name=$m-$k-$c
		f=$tmp/$name.snap
		extra=()
		case $k in
		file) dest=$f ;;
		# exec: also paced, so the limit meets a pipe's back-pressure.
		exec) dest="exec:cat > '$f'"; extra=(--max-rate 64M) ;;
		unix) dest=unix:$tmp/sock; listen "$f" ;;
		fd) dest=fd:3 ;;
		esac
		rc=0
		if [[ $k == fd ]]; then
			"$vm" run "${args[@]}" --method "$m" --compress "$c" --snapshot-at "100:$dest" 3>"$f" \
				>"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
		else
			"$vm" run "${args[@]}" "${extra[@]}" --method "$m" --compress "$c" --snapshot-at "100:$dest" \
				>"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
		fi
		if [[ $k == unix ]]; then
			wait "$bg_pid" || fail "$name: the listener failed"
			bg_pid=
		fi
		if [[ $rc -ne 0 ]]; then
			fail "$name: run exited $rc: $(tail -n 3 "$tmp/$name.err")"
			continue
		fi
		cmp -s "$tmp/plain" "$tmp/$name.out" || fail "$name: console output differs from the plain run"
		"$tool" verify "$f" >"$tmp/$name.v" 2>&1 || fail "$name: the snapshot received does not verify: $(cat "$tmp/$name.v")"
		z=$("$tool" info --json "$f" 2>/dev/null | grep -o '"compress":"[a-z]*"')
		[[ $z == "\"compress\":\"$c\"" ]] || fail "$name: info says $z, not compress $c"
		rm -f "$f"
	done
	# The receiver exits after 4 KiB: that snapshot fails, the guest goes on.
	rc=0
	"$vm" run "${args[@]}" --method "$m" --snapshot-at '100:exec:head -c 4096 >/dev/null' \
		>"$tmp/$m-head.out" 2>"$tmp/$m-head.err" || rc=$?
	[[ $rc -eq 1 ]] || fail "$m/head: exit $rc, not 1 (a snapshot failed): $(tail -n 3 "$tmp/$m-head.err")"
	grep -qF "snapshot exec:head -c 4096 >/dev/null failed: " "$tmp/$m-head.err" ||
		fail "$m/head: no failure naming the destination: $(cat "$tmp/$m-head.err")"
	grep -q 'Broken pipe' "$tmp/$m-head.err" || fail "$m/head: the message does not say Broken pipe: $(cat "$tmp/$m-head.err")"
	cmp -s "$tmp/plain" "$tmp/$m-head.out" || fail "$m/head: the guest's output differs from the plain run"
done

[[ $fails -eq 0 ]] || exit 1
echo "ok: ${#methods[@]} methods x ${#kinds[@]} destinations, zstd and not; a receiver exiting early per method"
