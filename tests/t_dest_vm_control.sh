#!/usr/bin/env bash
# t_dest_vm_control.sh - the control socket's `snapshot` takes a destination
# as --snapshot-at does: exec:cat > FILE arrives whole and verifies; a bad
# destination gets an error reply that says why, and starts nothing; a
# receiver that exits at once (exec:true) makes query-snapshot report
# "failed" with an error naming the destination, while the guest keeps
# running (query-status) and the next snapshot, into a file, completes.
# timeout: 180
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the control client"; exit 77; }

# A guest that runs long enough for every command; quit ends it.
# Run in $tmp: a destination taken for a file name would be created there.
(cd "$tmp" && exec "$vm" run sweep --mem 32M --rounds 100000 --control "$tmp/ctl") >/dev/null 2>"$tmp/vm.err" &
bg_pid=$!
for _ in $(seq 200); do [[ -S $tmp/ctl ]] && break; sleep 0.05; done

python3 - "$tmp" <<'PY'
import json, socket, sys, time
tmp = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(tmp + "/ctl")
f = s.makefile("rw")
json.loads(f.readline())
fails = []
def call(name, **args):
    f.write(json.dumps({"execute": name, "arguments": args}) + "\n"); f.flush()
    return json.loads(f.readline())
def settle():
    for _ in range(600):
        r = call("query-snapshot")["return"]
        if r["status"] not in ("active", "pending"):
            return r
        time.sleep(0.05)
    fails.append("a snapshot never ended")
    return {}

call("qmp_capabilities")
r = call("snapshot", path="tcp:localhost:1")
if "error" not in r or "not supported" not in r["error"]["desc"]:
    fails.append("tcp: not refused with a reason: %r" % r)
r = call("snapshot", path="exec:")
if "error" not in r or "missing command" not in r["error"]["desc"]:
    fails.append("exec: without a command not refused: %r" % r)
if call("query-snapshot")["return"]["status"] != "none":
    fails.append("a refused destination started a snapshot")

r = call("snapshot", path="exec:cat > '%s/c.snap'" % tmp)
if "return" not in r:
    fails.append("exec:cat refused: %r" % r)
q = settle()
if q.get("status") != "completed":
    fails.append("exec:cat: %r" % q)

r = call("snapshot", path="exec:true")
q = settle()
if q.get("status") != "failed" or not q.get("error", "").startswith("exec:true: "):
    fails.append("exec:true: not failed with an error naming it: %r" % q)
if call("query-status")["return"].get("status") != "running":
    fails.append("the guest is not running after a failed snapshot")

call("snapshot", path=tmp + "/after.snap")
q = settle()
if q.get("status") != "completed":
    fails.append("the snapshot after a failed one: %r" % q)
call("quit")
for m in fails:
    print("FAIL:", m)
sys.exit(1 if fails else 0)
PY
rc=$?
wait "$bg_pid"
bg_pid=
fails=0
[[ $rc -eq 0 ]] || fails=1
for s in c.snap after.snap; do
	"$tool" verify "$tmp/$s" >"$tmp/v" 2>&1 || { echo "FAIL: $s does not verify: $(cat "$tmp/v")"; fails=1; }
done
[[ $fails -eq 0 ]] || { echo "VM stderr: $(tail -n 5 "$tmp/vm.err")"; exit 1; }
echo "ok: control socket snapshot into exec:, refusals, a dying receiver"
