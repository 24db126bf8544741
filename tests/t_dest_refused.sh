#!/usr/bin/env bash
# t_dest_refused.sh - destinations that cannot be used are refused with a
# message that names them and says why: an unsupported network scheme, a
# scheme without its argument, fd: without a number (usage errors, exit 2,
# before the guest runs); fd:N not open or open read-only, unix: with no
# listener (that snapshot fails, exit 1); `bgsnap-vm restore - --lazy` (a
# stream is restored eagerly only); an empty stream on stdin.
# timeout: 120
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
vm=$(realpath -m "$BUILD/bgsnap-vm")
tool=$(realpath "$BUILD/bgsnap")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A destination taken for a file name would be created here, not in the tree.
cd "$tmp" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect CODE PATTERN CMD...: CMD exits CODE and says PATTERN on stderr.
expect() {
	local code=$1 pat=$2 rc=0
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
	[[ $rc -eq $code ]] || fail "$*: exit $rc, not $code: $(tail -n 2 "$tmp/err")"
	grep -qE -- "$pat" "$tmp/err" || fail "$*: stderr does not say '$pat': $(cat "$tmp/err")"
}

expect 2 "out fd:3: one descriptor takes one snapshot" "$tool" bench --mem 4M --out fd:3 --method uffd,stop
expect 2 "out exec:cat: the chain benches write files" "$tool" bench --mem 4M --out exec:cat --incremental 2
expect 2 "out: tcp:h:1: scheme 'tcp:' is not supported" "$tool" bench --mem 4M --out 'tcp:h:1'

if [[ ! -x $vm ]]; then
	[[ $fails -eq 0 ]] || exit 1
	echo "SKIP: $vm is not built (needs Unicorn and nasm); bench refusals passed"
	exit 77
fi
a=(sweep --mem 8M --rounds 100)
expect 2 "tcp:localhost:4444: scheme 'tcp:' is not supported" "$vm" run "${a[@]}" --snapshot-at 10:tcp:localhost:4444
expect 2 "rdma:x: scheme 'rdma:' is not supported" "$vm" run "${a[@]}" --snapshot-at 10:rdma:x
expect 2 "exec:: missing command" "$vm" run "${a[@]}" --snapshot-at 10:exec:
expect 2 "unix:: missing path" "$vm" run "${a[@]}" --snapshot-at 10:unix:
expect 2 "file:: missing path" "$vm" run "${a[@]}" --snapshot-at 10:file:
expect 2 "fd:: missing descriptor number" "$vm" run "${a[@]}" --snapshot-at 10:fd:
expect 2 "fd:three: 'three' is not a descriptor number" "$vm" run "${a[@]}" --snapshot-at 10:fd:three
expect 2 "socket path too long" "$vm" run "${a[@]}" --snapshot-at "10:unix:/$(printf 'x%.0s' $(seq 200))"
expect 1 "snapshot fd:9 failed: fd:9: descriptor 9 is not open" "$vm" run "${a[@]}" --snapshot-at 10:fd:9
: >"$tmp/ro"
expect 1 "fd:3: descriptor 3 is not open for writing" "$vm" run "${a[@]}" --snapshot-at 10:fd:3 3<"$tmp/ro"
expect 1 "unix:$tmp/none: cannot connect: No such file or directory" "$vm" run "${a[@]}" --snapshot-at "10:unix:$tmp/none"
expect 2 "-: a stream can only be restored eagerly" "$vm" restore - --lazy
expect 1 "-: not a bgsnap snapshot" "$vm" restore -
[[ ! -e tcp:localhost:4444 && ! -e rdma:x ]] || fail "a refused scheme was taken for a file name"

[[ $fails -eq 0 ]] || exit 1
echo "ok: every bad destination refused with its reason"
