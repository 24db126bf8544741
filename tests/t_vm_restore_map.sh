#!/usr/bin/env bash
# t_vm_restore_map.sh - a VM restored by mapping (`bgsnap-vm restore --map`)
# runs exactly: for each built-in guest, snapshots taken with
# --page-aligned by uffd and stop verify, are version 4 and mode 0600, and
# `restore --map` prints exactly the rest of the original output (RAM
# mapped, --stats says so), as the copy restore does.  A snapshot that is
# not page-aligned is restored by copy under --map, output still exact.
# --map with --lazy or --snapshot-at is a usage error (exit 2).
# timeout: 300
set -u
cd "$(dirname "$0")/.." || exit 1
source tests/vm_lib.sh

declare -A args=(
	[sweep]="--mem 32M --rounds 600"
	[random]="--mem 32M --rounds 2"
	[sieve]="--mem 8M --rounds 2"
)
for g in $("$vm" guests | awk '{print $1}'); do
	a=${args[$g]:-"--mem 32M"}
	# shellcheck disable=SC2086
	"$vm" run "$g" $a >"$tmp/$g.plain" 2>"$tmp/$g.plain.err" || { fail "$g: plain run failed"; continue; }
	for combo in "uffd --page-aligned" "stop --page-aligned" "stop"; do
		read -r m aligned <<<"$combo"
		{
			s=$tmp/$g-$m$aligned.bgs
			# shellcheck disable=SC2086
			if ! "$vm" run "$g" $a --method "$m" $aligned --snapshot-at "100:$s" --stats >"$tmp/out" 2>"$tmp/err"; then
				fail "$g/$m$aligned: run failed: $(tail -n 3 "$tmp/err")"
				continue
			fi
			off=$(sed -n 's/.*snapshot 1: .* console_offset=\([0-9]*\) .*/\1/p' "$tmp/err")
			[[ -n $off ]] || { fail "$g/$m$aligned: no console_offset"; continue; }
			"$tool" verify "$s" >"$tmp/v" 2>&1 || fail "$g/$m$aligned: verify: $(cat "$tmp/v")"
			[[ $(stat -c %a "$s") == 600 ]] || fail "$g/$m$aligned: mode $(stat -c %a "$s")"
			if [[ -n $aligned ]]; then
				"$tool" info "$s" | grep -q "format:    v4" || fail "$g/$m: not version 4"
			fi
			if ! "$vm" restore "$s" --map --stats >"$tmp/rest" 2>"$tmp/rerr"; then
				fail "$g/$m$aligned: restore --map failed: $(tail -n 3 "$tmp/rerr")"
				continue
			fi
			want="mapped from the snapshot"
			[[ -n $aligned ]] || want="copied"
			grep -q "guest RAM $want" "$tmp/rerr" || fail "$g/$m$aligned: --stats does not say '$want': $(head -3 "$tmp/rerr")"
			tail -c +"$((off + 1))" "$tmp/$g.plain" >"$tmp/want"
			cmp -s "$tmp/want" "$tmp/rest" ||
				fail "$g/$m$aligned: restore --map output is not the rest of the original: $(diff "$tmp/want" "$tmp/rest" | head -n 4)"
		}
	done
done
s=$(ls "$tmp"/*--page-aligned.bgs | head -n 1)
for bad in "--lazy" "--snapshot-at 10:$tmp/x.bgs"; do
	# shellcheck disable=SC2086
	"$vm" restore "$s" --map $bad >/dev/null 2>&1
	(($? == 2)) || fail "restore --map $bad is not a usage error"
done
((fails == 0)) || exit 1
echo "PASS: bgsnap-vm restore --map continues every guest exactly"
