#!/usr/bin/env bash
# t_vm_chain_every.sh - `bgsnap-vm run --snapshot-every MS:DIR` writes a
# chain into DIR (made if missing): at least 3 files, mode 0600, the first
# full, the last incremental at depth >= 2; `bgsnap verify` of the last
# checks every link; `bgsnap-vm restore DIR/LAST` (eager and lazy) prints
# exactly the rest of the uninterrupted run, and so does the newest link
# taken before the guest's last output (the last one may come after it,
# leaving nothing to compare).  A method that cannot chain is a usage
# error that names it.
# timeout: 240
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh

a="--mem 16M --rounds 2000"
# shellcheck disable=SC2086
"$vm" run sweep $a >"$tmp/plain" 2>"$tmp/plain.err" || { echo "FAIL: plain run: $(tail -n 3 "$tmp/plain.err")"; exit 1; }
total=$(wc -c <"$tmp/plain")

# shellcheck disable=SC2086
if ! "$vm" run sweep $a --snapshot-every "100:$tmp/chain" --stats >"$tmp/run" 2>"$tmp/run.err"; then
	if grep -q "tracking writes between snapshots needs" "$tmp/run.err"; then
		echo "SKIP: the kernel cannot track writes between snapshots: $(grep -m1 'needs' "$tmp/run.err")"
		exit 77
	fi
	echo "FAIL: run with --snapshot-every: $(tail -n 3 "$tmp/run.err")"
	exit 1
fi
cmp -s "$tmp/plain" "$tmp/run" || fail "the guest's output changed under --snapshot-every"

dir=$tmp/chain
mapfile -t files < <(cd "$dir" && ls snap-*.bgsnap)
n=${#files[@]}
((n >= 3)) || { echo "FAIL: $n files in $dir, want at least 3: $(ls -l "$dir")"; exit 1; }
[[ ${files[0]} == snap-0001.bgsnap ]] || fail "first file is ${files[0]}, want snap-0001.bgsnap"
[[ ${files[n - 1]} == $(printf 'snap-%04d.bgsnap' "$n") ]] || fail "last file is ${files[n - 1]}, want link $n"
for f in "${files[@]}"; do
	mode=$(stat -c %a "$dir/$f")
	[[ $mode == 600 ]] || fail "$f has mode $mode, want 600"
done
last=$dir/${files[n - 1]}

"$tool" info --json "$dir/${files[0]}" >"$tmp/first.json" 2>&1 || fail "info of the first file: $(cat "$tmp/first.json")"
grep -q '"depth":0,"incremental":false' "$tmp/first.json" || fail "the first file is not a full snapshot: $(cat "$tmp/first.json")"
"$tool" info --json "$last" >"$tmp/last.json" 2>&1 || fail "info of the last file: $(cat "$tmp/last.json")"
depth=$(sed -n 's/.*"depth":\([0-9]*\),"incremental":true.*/\1/p' "$tmp/last.json")
[[ -n $depth ]] || fail "the last file is not incremental: $(cat "$tmp/last.json")"
[[ -n $depth ]] && ((depth < 2)) && fail "the last file has depth $depth, want at least 2"
[[ -n $depth ]] && ((depth != n - 1)) && fail "the last file has depth $depth, want $((n - 1)) (one chain)"
"$tool" verify "$last" >"$tmp/v" 2>&1 || fail "verify of the last file: $(cat "$tmp/v")"
grep -q "chain of $n files, each verified" "$tmp/v" || fail "verify did not check the $n links: $(cat "$tmp/v")"

# The console offset of link $1 (a file name in $dir), from --stats.
offset_of() {
	sed -n "s|.*path=file:$dir/$1 .* console_offset=\([0-9]*\) .*|\1|p" "$tmp/run.err"
}

# Restores $1 (a file name in $dir) eagerly and lazily; each must print
# the original run's output from the link's console offset on.
restore_rest() {
	local off
	off=$(offset_of "$1")
	[[ -n $off ]] || { fail "no console_offset for $1 in --stats"; return; }
	tail -c +"$((off + 1))" "$tmp/plain" >"$tmp/want"
	for mode in eager lazy; do
		flag=
		[[ $mode == lazy ]] && flag=--lazy
		# shellcheck disable=SC2086
		if ! "$vm" restore "$dir/$1" $flag >"$tmp/rest" 2>"$tmp/rest.err"; then
			fail "$mode restore of $1: $(tail -n 3 "$tmp/rest.err")"
			continue
		fi
		cmp -s "$tmp/want" "$tmp/rest" ||
			fail "$mode restore of $1 (offset $off) is not the rest of the run: $(diff "$tmp/want" "$tmp/rest" | head -n 4)"
	done
}

restore_rest "${files[n - 1]}"
# The newest link at depth >= 2 with output still to come.
mid=
for ((i = n - 1; i >= 2; i--)); do
	off=$(offset_of "${files[i]}")
	if [[ -n $off ]] && ((off < total)); then
		mid=${files[i]}
		break
	fi
done
if [[ -n $mid ]]; then
	restore_rest "$mid"
else
	fail "no link at depth >= 2 before the guest's last output: nothing left to compare"
fi

"$vm" run sweep --mem 16M --rounds 10 --method uffd --snapshot-every "100:$tmp/u" >/dev/null 2>"$tmp/u.err"
rc=$?
[[ $rc == 2 ]] || fail "--snapshot-every with method uffd exits $rc, want 2"
grep -q "method uffd cannot take a chain" "$tmp/u.err" || fail "--snapshot-every with method uffd says: $(cat "$tmp/u.err")"

if ((fails)); then
	echo "FAIL: $fails problems"
	exit 1
fi
echo "PASS: $n files, last at depth $depth verified; eager and lazy restore of ${files[n - 1]} and $mid print the rest of the run"
