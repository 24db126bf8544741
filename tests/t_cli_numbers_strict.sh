#!/usr/bin/env bash
# t_cli_numbers_strict.sh - every number and size option of bgsnap bench and
# bgsnap-vm refuses what is not a plain unsigned number: a sign, leading
# white space (strtoull would take " -4096" as 2^64-4096), trailing junk, a
# value past 64 bits or past a unit's shift; and still takes the valid
# forms.  Each option is given before --help, so a value that is accepted
# ends in the help text (exit 0) and nothing runs; a refused one exits 2.
# timeout: 300
set -u
BUILD="${BUILD:-build}"
B="$BUILD/bgsnap"
VM="$BUILD/bgsnap-vm"
[ -x "$B" ] || { echo "skip: $B not built"; exit 77; }
fails=0
checked=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# try WANT PROG... : PROG ... --help must exit WANT (0 accepted, 2 refused)
try() {
	local want=$1; shift
	local got
	timeout 20 "$@" --help >/dev/null 2>&1
	got=$?
	checked=$((checked + 1))
	[ "$got" = "$want" ] || fail "$(printf "'%s' " "$@") exited $got, expected $want"
}

# Refused by every number and size parser.
bad_numbers=(" -4096" "-4096" "-1" " 4096" "+4096" "	8" "4096 " "4096x" "" "18446744073709551616"
	"99999999999999999999999" "0x" "1e3")
# Sizes: units beyond 64 bits, unknown units, units without a number.
bad_sizes=("17179869184G" "16777216T" "18446744073709551615K" "4Q" "K" "4KK" "-64K" " -64K")

for v in "${bad_numbers[@]}" "${bad_sizes[@]}"; do
	try 2 "$B" bench --mem "$v"
	try 2 "$B" bench --buffer "$v"
done
for v in "${bad_numbers[@]}"; do
	for opt in --threads --repeat --wp-threads --fault-around --duration-before --seed; do
		try 2 "$B" bench "$opt" "$v"
	done
done
for v in 64K 65536 1M 1MiB 1MB 1G 4096K; do
	try 0 "$B" bench --mem "$v"
	try 0 "$B" bench --buffer "$v"
done
try 0 "$B" bench --threads 4
try 0 "$B" bench --repeat 3
try 0 "$B" bench --fault-around 8
try 0 "$B" bench --duration-before 0
try 0 "$B" bench --seed 0x10
try 0 "$B" bench --seed 18446744073709551615

if [ -x "$VM" ]; then
	for v in "${bad_numbers[@]}" "${bad_sizes[@]}"; do
		try 2 "$VM" run sweep --mem "$v"
	done
	for v in "${bad_numbers[@]}"; do
		try 2 "$VM" run sweep --rounds "$v"
		try 2 "$VM" run sweep --snapshot-at "$v:/nonexistent/x.bgs"
	done
	for v in "${bad_numbers[@]}" 0800 1000 0o600; do
		try 2 "$VM" run sweep --control-mode "$v"
	done
	try 0 "$VM" run sweep --control-mode 0660
	try 0 "$VM" run sweep --control-mode 600
	try 0 "$VM" run sweep --mem 16M
	try 0 "$VM" run sweep --mem 2G
	try 0 "$VM" run sweep --rounds 18446744073709551615
	try 0 "$VM" run sweep --snapshot-at 100:/nonexistent/x.bgs
else
	echo "note: $VM not built: its options are not checked"
fi

if [ "$fails" -gt 0 ]; then
	echo "$fails of $checked check(s) failed"
	exit 1
fi
echo "ok: $checked option values: signs, white space, junk and overflow refused"
