#!/usr/bin/env bash
# t_vm_snapshot.sh - the reference VM end to end.  For every built-in guest
# and every method (uffd, fork, stop): the console output of a run with a
# live snapshot equals the output of a run without; `bgsnap verify` accepts
# the snapshot; `bgsnap-vm restore` prints exactly the rest of the original
# output, from the console offset the snapshot recorded (and so does
# `restore --lazy` of the uffd snapshot).  Guests run on
# small RAM and few rounds so that each run lasts about a second.
# timeout: 400
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh

# guest -> arguments that make it last about a second here
declare -A args=(
	[sweep]="--mem 32M --rounds 600"
	[random]="--mem 32M --rounds 2"
	[sieve]="--mem 8M --rounds 2"
)
guests=$("$vm" guests | awk '{print $1}')
[[ -n $guests ]] || fail "bgsnap-vm guests lists nothing"

for g in $guests; do
	a=${args[$g]:-"--mem 32M"}
	# shellcheck disable=SC2086
	if ! "$vm" run "$g" $a >"$tmp/$g.plain" 2>"$tmp/$g.plain.err"; then
		fail "$g: plain run failed: $(tail -n 3 "$tmp/$g.plain.err")"
		continue
	fi
	[[ -s $tmp/$g.plain ]] || fail "$g: printed nothing"
	for m in uffd fork stop; do
		s=$tmp/$g-$m.bgs
		# shellcheck disable=SC2086
		if ! "$vm" run "$g" $a --method "$m" --snapshot-at "100:$s" --stats >"$tmp/$g-$m.out" 2>"$tmp/$g-$m.err"; then
			fail "$g/$m: run with a snapshot failed: $(tail -n 3 "$tmp/$g-$m.err")"
			continue
		fi
		cmp -s "$tmp/$g.plain" "$tmp/$g-$m.out" ||
			fail "$g/$m: output with a snapshot differs from the plain run: $(diff "$tmp/$g.plain" "$tmp/$g-$m.out" | head -n 4)"
		off=$(sed -n 's/.*snapshot 1: .* console_offset=\([0-9]*\) .*/\1/p' "$tmp/$g-$m.err")
		if [[ -z $off ]]; then
			fail "$g/$m: --stats gave no console_offset"
			continue
		fi
		if ! "$tool" verify "$s" >"$tmp/v.out" 2>&1; then
			fail "$g/$m: bgsnap verify rejects the snapshot: $(cat "$tmp/v.out")"
			continue
		fi
		if ! "$vm" restore "$s" --stats >"$tmp/$g-$m.rest" 2>"$tmp/$g-$m.rerr"; then
			fail "$g/$m: restore failed: $(tail -n 3 "$tmp/$g-$m.rerr")"
			continue
		fi
		roff=$(sed -n 's/.*restored .* console offset \([0-9]*\),.*/\1/p' "$tmp/$g-$m.rerr")
		[[ $roff == "$off" ]] || fail "$g/$m: restore reports console offset '$roff', the run '$off'"
		tail -c +"$((off + 1))" "$tmp/$g.plain" >"$tmp/$g-$m.want"
		cmp -s "$tmp/$g-$m.want" "$tmp/$g-$m.rest" ||
			fail "$g/$m: restored output is not the rest of the original (offset $off): $(diff "$tmp/$g-$m.want" "$tmp/$g-$m.rest" | head -n 4)"
		[[ -s $tmp/$g-$m.rest ]] || fail "$g/$m: the snapshot came after the guest's last output: nothing left to compare"
		if [[ $m == uffd ]]; then
			# Lazy restore: RAM filled on demand while the guest runs.
			if ! "$vm" restore "$s" --lazy >"$tmp/$g-lazy.rest" 2>"$tmp/$g-lazy.rerr"; then
				fail "$g: lazy restore failed: $(tail -n 3 "$tmp/$g-lazy.rerr")"
			else
				cmp -s "$tmp/$g-$m.want" "$tmp/$g-lazy.rest" ||
					fail "$g: lazily restored output is not the rest of the original: $(diff "$tmp/$g-$m.want" "$tmp/$g-lazy.rest" | head -n 4)"
			fi
		fi
		echo "ok $g/$m: offset $off of $(wc -c <"$tmp/$g.plain") bytes"
		rm -f "$s"
	done
done

# A damaged snapshot is refused, not run.
s=$tmp/bad.bgs
if "$vm" run sweep --mem 8M --rounds 50 --snapshot-at 0:"$s" >/dev/null 2>&1; then
	size=$(stat -c %s "$s")
	printf 'X' | dd of="$s" bs=1 seek=$((size / 2)) conv=notrunc status=none
	"$vm" restore "$s" >/dev/null 2>"$tmp/bad.err"
	rc=$?
	[[ $rc == 1 ]] || fail "restore of a damaged snapshot exits $rc, want 1"
	[[ -s $tmp/bad.err ]] || fail "restore of a damaged snapshot says nothing"
else
	fail "snapshot at 0 ms failed"
fi

if ((fails)); then
	echo "FAIL: $fails problems"
	exit 1
fi
echo "PASS"
