#!/usr/bin/env bash
# t_tools_boundary.sh - the library's boundary: nothing outside src/ (the
# tools, the bench, the VM, bgsnap-kv) includes a header of src/.  Every
# `#include "X"` of a file under tools/, bench/, vm/ or kv/ must name a file
# next to it, in include/ (the public header) or in tools/ (the CLI floor,
# `cli/...`), and never through src/.  The build enforces the same by not
# passing -Isrc to those files; this test also catches a relative path
# ("../src/...") that the build would accept.
# timeout: 30
set -u
cd "$(dirname "$0")/.." || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
checked=0
while IFS= read -r f; do
	dir=$(dirname "$f")
	while IFS= read -r inc; do
		checked=$((checked + 1))
		found=
		for base in "$dir" include tools; do
			if [[ -f $base/$inc ]]; then
				found=$base/$inc
				break
			fi
		done
		if [[ -z $found ]]; then
			fail "$f includes \"$inc\", which is not next to it, in include/ or in tools/"
			continue
		fi
		real=$(realpath --relative-to=. "$found")
		[[ $real == src/* ]] && fail "$f includes \"$inc\": $real is inside the library"
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(find tools bench vm kv -name '*.[ch]' 2>/dev/null | sort)
((checked > 0)) || fail "no include was checked: the tree has moved?"
if ((fails)); then
	echo "FAIL: $fails includes cross the library's boundary"
	exit 1
fi
echo "PASS: $checked includes in tools/, bench/, vm/, kv/ stay outside src/"
