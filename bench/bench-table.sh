#!/usr/bin/env bash
# bench-table.sh - prints a markdown table of every snapshot method at the
# given memory sizes, with 4 KiB pages and with transparent huge pages, next
# to the raw kernel primitives measured on the same memory in the same run
# (one UFFDIO_WRITEPROTECT and its removal, mprotect and back, one fork())
# and a dd of the same number of bytes to the same sink directory: every
# claim a ratio measured in one run, as these machines are shared and noisy.
# The raw primitives come from the same bgsnap process (bench --probe-wp),
# timed on the filled memory before the writers start.
#
# Usage: bench/bench-table.sh [SIZE...]        (default: 1G 4G)
# Environment:
#   BUILD=build       where bgsnap is built
#   THREADS=1 PATTERN=random BUFFER=64M METHOD=all   passed to bgsnap bench
#   MODES="4k thp"    page modes to run
#   SINK_DIR=$TMPDIR  directory the snapshots and the dd file are written to
#   BEFORE_MS=300     write-rate window before each snapshot
# Raw JSON lines are kept in $SINK_DIR/bench-table.jsonl.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
bin=$BUILD/bgsnap
THREADS=${THREADS:-1}
PATTERN=${PATTERN:-random}
BUFFER=${BUFFER:-64M}
METHOD=${METHOD:-all}
MODES=${MODES:-4k thp}
BEFORE_MS=${BEFORE_MS:-300}
SINK_DIR=${SINK_DIR:-${TMPDIR:-/tmp}}
sizes=("$@")
((${#sizes[@]})) || sizes=(1G 4G)

if [[ ! -x $bin ]]; then
	echo "bench-table: $bin is not built (run make)" >&2
	exit 1
fi
jsonl=$SINK_DIR/bench-table.jsonl
: >"$jsonl"
snap=$SINK_DIR/bench-table.$$.snap
ddfile=$SINK_DIR/bench-table.$$.dd
trap 'rm -f "$snap".* "$ddfile"' EXIT

status=0
for size in "${sizes[@]}"; do
	for mode in $MODES; do
		thp=()
		[[ $mode == thp ]] && thp=(--thp)
		echo "bench-table: $size $mode ..." >&2
		# One process: the raw primitives are timed on the same memory just
		# before the methods run on it.
		"$bin" bench --probe-wp --mem "$size" --threads "$THREADS" --pattern "$PATTERN" \
			--buffer "$BUFFER" --method "$METHOD" --duration-before "$BEFORE_MS" --json \
			--out "$snap" "${thp[@]}" |
			sed "s/^{/{\"row\":\"$size $mode\",/" >>"$jsonl" || status=1
		rm -f "$snap".*
		# dd of as many bytes as the stop method wrote (else the memory size),
		# to the same directory, fsynced like a snapshot.
		bytes=$(python3 -c '
import json, sys
b = 0
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("row") == sys.argv[2] and "bytes_written" in o:
        b = o["bytes_written"] if o["method"] == "stop" or not b else b
print(b)' "$jsonl" "$size $mode")
		((bytes > 0)) || bytes=$(python3 -c 'import sys; u={"K":1<<10,"M":1<<20,"G":1<<30}; s=sys.argv[1].rstrip("iB"); print(int(s[:-1])*u[s[-1].upper()] if s[-1].upper() in u else int(s))' "$size")
		count=$(((bytes + 1048575) / 1048576))
		t0=$(date +%s%N)
		dd if=/dev/zero of="$ddfile" bs=1M count="$count" conv=fsync status=none
		t1=$(date +%s%N)
		rm -f "$ddfile"
		echo "{\"row\":\"$size $mode\",\"dd\":true,\"bytes\":$((count * 1048576)),\"dd_us\":$(((t1 - t0) / 1000))}" >>"$jsonl"
	done
done

python3 - "$jsonl" "$THREADS" "$PATTERN" "$BUFFER" "$SINK_DIR" <<'EOF'
import json, sys
path, threads, pattern, buffer, sink = sys.argv[1:6]
rows = {}
order = []
for line in open(path):
    o = json.loads(line)
    r = o.pop("row")
    if r not in rows:
        rows[r] = {"probe": None, "dd": None, "methods": []}
        order.append(r)
    if "probe" in o:
        rows[r]["probe"] = o
    elif o.get("dd"):
        rows[r]["dd"] = o
    else:
        rows[r]["methods"].append(o)

def f(v, d=1):
    return "-" if v is None else ("%.*f" % (d, v))

print("bgsnap bench, %s writer thread(s), pattern %s, copy buffer %s, sink %s" % (threads, pattern, buffer, sink))
print()
print("| memory | method | pause µs | wp µs | pre-wp ms, pages re-protected | raw wp µs | pause / raw wp | pause / fork | total ms | total / stop | dd ms | total / dd | unprotect ms | commit ms | first write p50 / p99 / max µs | p50 / fork | trapped writes: n, p50 µs | trapped p50 / fork | writes/s before | writes/s during | extra MiB | verified |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in order:
    d = rows[r]
    probe, dd = d["probe"] or {}, d["dd"] or {}
    raw_wp = probe.get("wp_us")
    by = {m["method"]: m for m in d["methods"] if "pause_us" in m}
    fork, stop = by.get("fork"), by.get("stop")
    dd_ms = dd["dd_us"] / 1000.0 if dd else None
    for m in d["methods"]:
        name = m["method"]
        if "pause_us" not in m:
            why = m.get("skipped") or m.get("error", "")
            print("| %s | %s | %s |" % (r, name, ("skipped: " if "skipped" in m else "error: ") + why.replace("|", "/")) + " |" * 19)
            continue
        pause, total = m["pause_us"], m["total_ms"]
        ratio = lambda a, b: ("%.3g" % (a / b)) if a is not None and b else "-"
        print("| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s | %d, %s | %s | %.3g | %.3g | %s%s | %s |" % (
            r, name, pause, m["wp_us"],
            "%s, %d" % (f(m.get("prewp_ms")), m.get("reprotect_pages", 0)) if m.get("prewp_ms") else "-",
            f(raw_wp, 0), ratio(pause, raw_wp),
            ratio(pause, fork["pause_us"] if fork else None),
            f(total), ratio(total, stop["total_ms"] if stop else None),
            f(dd_ms), ratio(total, dd_ms), f(m.get("unprotect_ms")), f(m.get("commit_ms")),
            f(m["first_write_us_p50"]), f(m["first_write_us_p99"]), f(m["first_write_us_max"]),
            ratio(m["first_write_us_p50"], fork["first_write_us_p50"] if fork else None),
            m.get("first_write_traps", 0), f(m.get("trap_us_p50")),
            ratio(m.get("trap_us_p50"), fork.get("trap_us_p50") if fork else None),
            m["writes_per_s_before"], m["writes_per_s_during"],
            f(m["extra_mem_peak_bytes"] / 1048576.0),
            "*" if m.get("extra_mem_source") == "estimate" else "",
            "yes" if m["verified"] else "**NO**"))
    if probe:
        print("| %s | *raw* | | | | wp %s, unwp %s, mprotect %s and back %s, fork %s µs | | | | | | | | | | | | | | | | |" % (
            r, f(probe.get("wp_us"), 0), f(probe.get("unwp_us"), 0), f(probe.get("mprotect_us"), 0),
            f(probe.get("mprotect_rw_us"), 0), f(probe.get("fork_us"), 0)))
print()
print("pre-wp: uffd, uffd-signal and mprotect write-protect before the pause, and in it (wp µs) protect again only the pages written meanwhile.")
print("raw wp: one UFFDIO_WRITEPROTECT of the whole filled region in the same process, before the writers start (bgsnap bench --probe-wp); unwp its removal; mprotect: to read-only, and back.")
print("dd: `dd if=/dev/zero bs=1M conv=fsync` of the bytes the stop method wrote, into the same directory.")
print("unprotect ms: the background writer removing protection from saved pages; commit ms: index, trailer, fsync and rename.")
print("trapped writes: first writes that took >= 2 µs (a fault, signal or copy-on-write), not those finding their page already saved.")
print("extra MiB marked * is estimated (fork: pages first written during the snapshot x 4 KiB).")
EOF
exit $status
