#!/usr/bin/env bash
# t_bench_memory_kinds.sh - every kind of memory a VM monitor backs guest RAM
# with (bgsnap bench --memory anon|thp|hugetlb|memfd|memfd-hugetlb) x every
# method, with writer threads: each snapshot verifies against the bench's
# oracle and restores eagerly and lazily into memory of the same kind
# exactly (lazily into a memfd: UFFDIO_COPY fills the file's page cache);
# fork refuses the shared kinds with a message; the
# huge pages stay: a hugetlb region keeps all of its huge pages, a THP
# region at least 95% of them after the snapshot, and a restore into THP
# memory gets at least 95% of the original's.  A hugetlb snapshot also
# exports as an ELF core (bgsnap extract --elf).
# Reserves 2 MiB huge pages when root (/proc/sys/vm/nr_hugepages, put back at
# exit by a trap, also on failure); skips the hugetlb kinds otherwise.
# timeout: 900
set -u
BUILD="${BUILD:-build}"
B="$BUILD/bgsnap"
[ -x "$B" ] || { echo "skip: $B not built"; exit 77; }
"$B" bench --help | grep -q -- --memory || { echo "skip: this bgsnap bench has no --memory"; exit 77; }
T=$(mktemp -d) || exit 1
NR=/proc/sys/vm/nr_hugepages
old_nr=""
cleanup() {
	[ -n "$old_nr" ] && echo "$old_nr" >"$NR"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' TERM INT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

MEM_MB=32
# Region, its eager and lazy restore targets, and fork's copy-on-write pages.
NEED=$((MEM_MB / 2 * 4))
free_pages() { awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo; }
hugetlb_ok=1
have=$(free_pages)
if [ "${have:-0}" -lt "$NEED" ]; then
	if [ "$(id -u)" = 0 ] && [ -w "$NR" ]; then
		old_nr=$(cat "$NR")
		echo $((old_nr + NEED - have)) >"$NR"
		have=$(free_pages)
	fi
	if [ "${have:-0}" -lt "$NEED" ]; then
		echo "note: only ${have:-0} free 2 MiB huge pages of $NEED (not root, or memory fragmented): hugetlb kinds not run"
		hugetlb_ok=0
	fi
fi

# field NAME LINE: a JSON number/bool field of one line.
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2"; }

run_kind() {
	local kind=$1 restore=$2
	local out="$T/$kind.json"
	timeout 600 "$B" bench --memory "$kind" --mem ${MEM_MB}M --threads 2 --method all --duration-after 0 \
		--duration-before 100 --restore "$restore" --json --quiet >"$out" 2>"$T/$kind.err"
	local rc=$?
	[ "$rc" = 0 ] || fail "$kind: bench exited $rc: $(tail -c 400 "$T/$kind.err")"
	local n=0 line m
	while IFS= read -r line; do
		m=$(sed -n 's/^{"method":"\([^"]*\)".*/\1/p' <<<"$line")
		[ -n "$m" ] || continue
		n=$((n + 1))
		if grep -q '"skipped"' <<<"$line"; then
			case "$kind:$m" in
			memfd:fork | memfd-hugetlb:fork)
				grep -q 'shared memory' <<<"$line" || fail "$kind/$m: refusal without the reason: $line" ;;
			*) fail "$kind/$m skipped: $line" ;;
			esac
			continue
		fi
		[ "$(field verified "$line")" = true ] || fail "$kind/$m: snapshot not verified: $line"
		[ "$(field restore_verified "$line")" = true ] || fail "$kind/$m: restore not verified: $line"
		local before after rhuge
		before=$(field huge_pages_before "$line")
		after=$(field huge_pages_after "$line")
		rhuge=$(field restore_huge_pages "$line")
		case "$kind" in
		hugetlb | memfd-hugetlb)
			[ "$before" = $((MEM_MB / 2)) ] && [ "$after" = "$before" ] ||
				fail "$kind/$m: huge pages before/after $before/$after, expected $((MEM_MB / 2)) both"
			[ "$rhuge" = "$before" ] || fail "$kind/$m: restored into $rhuge huge pages, expected $before" ;;
		thp)
			# The kernel may not give THP at all (fragmented memory): then
			# there is nothing to keep.
			if [ "${before:-0}" -gt 0 ]; then
				[ $((after * 100)) -ge $((before * 95)) ] ||
					fail "$kind/$m: $after huge pages after the snapshot of $before before (< 95%)"
				[ $((rhuge * 100)) -ge $((before * 95)) ] ||
					fail "$kind/$m: restore into THP memory got $rhuge huge pages of $before (< 95%)"
			else
				echo "note: $kind/$m: the region got no transparent huge pages"
			fi ;;
		esac
		echo "ok   $kind/$m: verified, restored ($restore), huge pages $before/$after, restored on $rhuge"
	done <"$out"
	[ "$n" = 5 ] || fail "$kind: $n result lines, expected 5 (one per method)"
}

run_kind anon both
run_kind thp both
run_kind memfd both
if [ "$hugetlb_ok" = 1 ]; then
	run_kind hugetlb both
	run_kind memfd-hugetlb both
	# ELF export of a hugetlb snapshot: the file holds 4 KiB pages like any.
	if timeout 300 "$B" bench --memory hugetlb --mem ${MEM_MB}M --method uffd --duration-after 0 --quiet \
		--out "$T/h.bgs" >"$T/h.out" 2>"$T/h.err"; then
		if "$B" extract "$T/h.bgs" --elf -o "$T/h.core" >/dev/null 2>"$T/x.err"; then
			if command -v readelf >/dev/null; then
				load=$(readelf -l -W "$T/h.core" | awk '$1 == "LOAD" { print $6 }' | head -1)
				[ "$((load))" = $((MEM_MB << 20)) ] || fail "ELF core of a hugetlb snapshot: PT_LOAD of $load bytes"
			fi
			echo "ok   hugetlb snapshot exported as an ELF core"
		else
			fail "extract --elf of a hugetlb snapshot: $(cat "$T/x.err")"
		fi
	else
		fail "bench --out of a hugetlb snapshot: $(tail -c 300 "$T/h.err")"
	fi
fi
[ "$fails" = 0 ] || exit 1
[ "$hugetlb_ok" = 1 ] || { echo "skip: hugetlb kinds not run: no free 2 MiB huge pages and not root"; exit 77; }
echo "t_bench_memory_kinds: ok"
