# shellcheck shell=bash
# pty_lib.sh - sourced by the tests of progress lines (t_cli_progress.sh,
# t_vm_progress.sh): running a command with stderr a pseudo-terminal, and
# what a progress line looks like.  Needs python3 (the callers skip
# without it).  No side effects: each caller keeps its own scratch
# directory and trap (cli_lib.sh, vm_lib.sh).
#
# under_pty OUT ERR CMD...: runs CMD with stderr a pseudo-terminal (stdin
# /dev/null, stdout to OUT), what it wrote on the terminal into ERR; prints
# CMD's exit code.  CMD may run at most $PTY_TIMEOUT s (default 120).
under_pty() {
	PTY_TIMEOUT=${PTY_TIMEOUT:-120} python3 - "$@" <<'PY'
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
rc = p.wait(timeout=float(os.environ["PTY_TIMEOUT"]))
open(err, "wb").write(data)
print(rc)
PY
}

# has_line FILE: FILE holds a percentage redrawn with '\r'.
has_line() { grep -qE '[0-9]+\.[0-9]%' "$1" && grep -q $'\r' "$1"; }
# no_line FILE: FILE holds no progress text at all.
no_line() { ! grep -qE '[0-9]\.[0-9]%|MB/s|'$'\r' "$1"; }
