#!/usr/bin/env bash
# t_fault_bench_enospc.sh - a full disk under the bench: `bgsnap bench --mem
# 128M --method uffd --out DIR/s.bgs` with DIR a 16 MiB tmpfs fails with a
# message saying the disk is full, exits non-zero (1), and leaves nothing in
# DIR.  The tmpfs lives in a private mount namespace (unshare -m); skips
# (77) where that is not permitted.
# timeout: 300
set -u
BUILD=${BUILD:-build}
bgsnap=$BUILD/bgsnap
[[ -x $bgsnap ]] || { echo "no $bgsnap: build first"; exit 1; }
if ! unshare -m true 2>/dev/null; then
	echo "cannot create a private mount namespace (unshare -m): not root?"
	exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

for m in uffd fork stop; do
	out=$(unshare -m bash -c '
		set -u
		mount --make-rprivate / && mount -t tmpfs -o size=16M tmpfs "$1" || exit 77
		"$2" bench --mem 128M --method "$3" --out "$1/s.bgs" >"$1.out" 2>&1
		rc=$?
		echo "rc=$rc"
		echo "left: $(ls -A "$1" | tr "\n" " ")"
	' _ "$dir" "$bgsnap" "$m")
	rc=$?
	if ((rc == 77)); then echo "cannot mount a tmpfs in a private namespace"; exit 77; fi
	echo "--- $m: $out"
	sed 's/^/    /' "$dir.out"
	brc=$(sed -n 's/^rc=//p' <<<"$out")
	left=$(sed -n 's/^left: //p' <<<"$out")
	if [[ $brc == 0 ]]; then echo "FAIL: bench --method $m into a full 16 MiB tmpfs exited 0"; exit 1; fi
	if [[ $brc != 1 ]]; then echo "FAIL: bench --method $m exited $brc, expected 1 (a failed check)"; exit 1; fi
	if ! grep -qiE 'no space left|ENOSPC' "$dir.out"; then
		echo "FAIL: bench --method $m did not say the disk is full"; exit 1
	fi
	if [[ -n ${left// /} ]]; then echo "FAIL: bench --method $m left files in the directory: $left"; exit 1; fi
	rm -f "$dir.out"
done
echo "bench into a full tmpfs fails cleanly for uffd, fork, stop"
exit 0
