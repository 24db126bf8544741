#!/usr/bin/env bash
# t_dest_bench_kinds.sh - `bgsnap bench --out` into every kind of
# destination, with the five methods, compression on and off:
#  - exec:bgsnap verify -: the receiver checks each snapshot while it is
#    taken (5 OK verdicts) and the bench verifies its copy (5 x verified);
#  - exec:cat > f.$BGSNAP_METHOD (zstd): five files that verify, zstd;
#  - unix: a listener saving one connection per method: each verifies;
#  - fd:3 per method (one descriptor, one snapshot), zstd every other;
#  - a file (PATH.METHOD each);
#  - a receiver that exits early (head -c 4096) for some methods: each of
#    them fails with an error naming the destination and "Broken pipe",
#    and the method after it in the same run verifies (the writers went on:
#    nothing stayed write-protected);
#  - --max-rate with exec:: paced (a lower bound, pacing only slows) and
#    verified.
# JSON "out_kind" says the kind, "out" the destination, and for a stream
# "verified_of":"copy" that the bench verified its copy of what it sent.
# timeout: 240
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
tool=$(realpath "$BUILD/bgsnap")
tmp=$(mktemp -d)
bg_pid=
trap '[[ -n $bg_pid ]] && kill "$bg_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
methods=(uffd uffd-signal mprotect fork stop)
b=(bench --mem 8M --threads 2 --duration-before 0 --duration-after 0 --quiet --json)

# verified NAME FILE N KIND: FILE holds N JSON lines, each verified, of KIND.
verified() {
	local name=$1 f=$2 n=$3 kind=$4
	local got
	got=$(grep -c '"verified":true' "$f")
	[[ $got -eq $n ]] || fail "$name: $got of $n methods verified: $(grep -o '"error":"[^"]*"' "$f" | head -n 3)"
	[[ $(grep -c "\"out_kind\":\"$kind\"" "$f") -eq $n ]] || fail "$name: JSON out_kind is not $kind on each line"
	local of=0
	[[ $kind == file ]] || of=$n
	[[ $(grep -c '"verified_of":"copy"' "$f") -eq $of ]] || fail "$name: JSON verified_of is not \"copy\" on $of lines"
}
# snap NAME FILE COMPRESS: FILE is a whole snapshot, compressed as said.
snap() {
	local name=$1 f=$2 c=$3
	[[ -s $f ]] || { fail "$name: $f not written"; return; }
	"$tool" verify "$f" >"$tmp/v" 2>&1 || fail "$name: $f does not verify: $(cat "$tmp/v")"
	"$tool" info --json "$f" | grep -q "\"compress\":\"$c\"" || fail "$name: $f is not compress $c"
}

"$tool" "${b[@]}" --method all --out "exec:'$tool' verify -" >"$tmp/ev.json" 2>"$tmp/ev.err" ||
	fail "exec verify -: bench exited non-zero: $(tail -n 3 "$tmp/ev.err")"
verified "exec verify -" "$tmp/ev.json" 5 exec
[[ $(grep -c '^-: OK, 2048 pages' "$tmp/ev.json") -eq 5 ]] || fail "exec verify -: not 5 OK verdicts from the receiver"
grep -qF "\"out\":\"exec:'$tool' verify -\"" "$tmp/ev.json" || fail "exec verify -: JSON out is not the destination"

"$tool" "${b[@]}" --method all --compress zstd --out "exec:cat > '$tmp/e.'\$BGSNAP_METHOD" >"$tmp/ec.json" 2>"$tmp/ec.err" ||
	fail "exec cat: bench exited non-zero: $(tail -n 3 "$tmp/ec.err")"
verified "exec cat" "$tmp/ec.json" 5 exec
for m in "${methods[@]}"; do snap "exec cat $m" "$tmp/e.$m" zstd; done

if command -v python3 >/dev/null; then
	python3 - "$tmp/sock" "$tmp/u" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(5); s.settimeout(60)
for i in range(5):
    c, _ = s.accept()
    with open("%s.%d" % (sys.argv[2], i), "wb") as f:
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            f.write(b)
    c.close()
PY
	bg_pid=$!
	for _ in $(seq 100); do [[ -S $tmp/sock ]] && break; sleep 0.05; done
	"$tool" "${b[@]}" --method all --out "unix:$tmp/sock" >"$tmp/u.json" 2>"$tmp/u.err" ||
		fail "unix: bench exited non-zero: $(tail -n 3 "$tmp/u.err")"
	wait "$bg_pid" || fail "unix: the listener failed"
	bg_pid=
	verified unix "$tmp/u.json" 5 unix
	for i in 0 1 2 3 4; do snap "unix $i" "$tmp/u.$i" none; done
else
	echo "note: no python3, unix: not tested"
fi

i=0
for m in "${methods[@]}"; do
	c=none
	(( i++ % 2 )) && c=zstd
	"$tool" "${b[@]}" --method "$m" --compress "$c" --out fd:3 3>"$tmp/d.$m" >"$tmp/d.json" 2>"$tmp/d.err" ||
		fail "fd:3 $m: bench exited non-zero: $(tail -n 3 "$tmp/d.err")"
	verified "fd:3 $m" "$tmp/d.json" 1 fd
	snap "fd:3 $m" "$tmp/d.$m" "$c"
done

"$tool" "${b[@]}" --method all --out "file:$tmp/f" >"$tmp/f.json" 2>"$tmp/f.err" ||
	fail "file: bench exited non-zero: $(tail -n 3 "$tmp/f.err")"
verified file "$tmp/f.json" 5 file
for m in "${methods[@]}"; do snap "file $m" "$tmp/f.$m" none; done

# early LIST DYING...: the receiver exits early for the methods DYING.
early() {
	local list=$1 rc=0
	shift
	local cond="" m
	for m in "$@"; do cond+="${cond:+ || }[ \"\$BGSNAP_METHOD\" = $m ]"; done
	local dest="exec:if $cond; then head -c 4096 >/dev/null; else cat >/dev/null; fi"
	"$tool" "${b[@]}" --method "$list" --out "$dest" >"$tmp/x.json" 2>"$tmp/x.err" || rc=$?
	[[ $rc -eq 1 ]] || fail "early $*: bench exit $rc, not 1"
	for m in ${list//,/ }; do
		local line
		line=$(grep "\"method\":\"$m\"" "$tmp/x.json")
		if [[ " $* " == *" $m "* ]]; then
			# (JSON escapes the command's quotes: its start names it.)
			[[ $line == *'"verified":false'* && $line == *'"error":"exec:if [ '*'Broken pipe'* ]] ||
				fail "early: $m did not fail with Broken pipe naming the destination: $line"
		else
			[[ $line == *'"verified":true'* ]] || fail "early: $m, after a failed method, did not verify: $line"
		fi
	done
}
early uffd,uffd-signal,mprotect,fork,stop uffd mprotect stop
early uffd,uffd-signal,mprotect,fork,stop uffd-signal fork

# Paced: 8 MiB at 16 MiB/s cannot take the writer less than ~0.5 s.
"$tool" "${b[@]}" --method uffd --fill random --max-rate 16M --out "exec:cat > '$tmp/r.snap'" >"$tmp/r.json" 2>"$tmp/r.err" ||
	fail "max-rate: bench exited non-zero: $(tail -n 3 "$tmp/r.err")"
verified max-rate "$tmp/r.json" 1 exec
wus=$(grep -o '"writer_us":[0-9]*' "$tmp/r.json" | cut -d: -f2)
[[ -n $wus && $wus -ge 350000 ]] || fail "max-rate: the writer took ${wus:-?} us for 8 MiB at 16 MiB/s (at least ~500000 expected)"
snap max-rate "$tmp/r.snap" none

[[ $fails -eq 0 ]] || exit 1
echo "ok: bench --out exec: (verify -, cat), unix:, fd:3, file:, receivers exiting early, --max-rate"
