#!/usr/bin/env python3
"""bench_check.py - checks the JSON lines of one `bgsnap bench --json` run.

Usage: bench_check.py FILE [options] METHOD...

Every METHOD must have exactly one valid JSON line.  A line with "skipped"
(a method this kernel refused) is reported as a note and not checked
further.  The other lines must have "verified" equal to --want (true by
default) and, with the options below, more.  Problems are printed one per
line; the exit status is 1 if there is any, else 0.

Options:
  --want true|false    what "verified" must be (default true)
  --contract           the fields the bench's contract promises are present,
                       pages_total matches mem_bytes, the pre-protect ran
                       where it should (mprotect always, never fork/stop) and
                       the pause re-protected no more pages than there are
  --restore            "restore_verified" is true
  --compress C         "compress" is C and the file is smaller than memory
                       (zstd:auto: chunks are counted, compressed or raw)
                       (0 < bytes_stored < mem_bytes)
  --compress-threads N "compress_threads" is N
"""
import json
import sys

CONTRACT_FIELDS = ["method", "mem_bytes", "threads", "pattern", "pause_us", "wp_us", "total_ms",
                   "bytes_written", "pages_total", "pages_zero", "pages_faulted",
                   "first_write_us_p50", "first_write_us_p99", "first_write_us_max",
                   "writes_per_s_before", "writes_per_s_during", "extra_mem_peak_bytes", "verified",
                   "prewp_ms", "reprotect_pages"]


def check_line(o, args, bad):
    m = o.get("method")
    want = args["want"]
    if o.get("verified") is not want:
        bad.append("%s: verified is %s, expected %s (%s)" % (m, o.get("verified"), want, o.get("error", "")))
    if args["contract"] and want:
        missing = [f for f in CONTRACT_FIELDS if f not in o]
        if missing:
            bad.append("%s: fields missing: %s" % (m, ", ".join(missing)))
        if o.get("pages_total") != o.get("mem_bytes", 0) // 4096:
            bad.append("%s: pages_total %s for mem_bytes %s" % (m, o.get("pages_total"), o.get("mem_bytes")))
        # Protected before the pause (the default): always for mprotect, for
        # the uffd methods when the kernel has what it takes, never for fork
        # and stop; the pause never re-protects more pages than there are.
        pre = o.get("prewp_ms", 0) > 0
        if pre if m in ("fork", "stop") else (m == "mprotect" and not pre):
            bad.append("%s: prewp_ms %s: pre-protect %s" % (m, o.get("prewp_ms"), "ran" if pre else "did not run"))
        if o.get("reprotect_pages", 0) > o.get("pages_total", 0):
            bad.append("%s: reprotect_pages %s > pages_total %s" % (m, o.get("reprotect_pages"), o.get("pages_total")))
    if args["restore"] and o.get("restore_verified") is not True:
        bad.append("%s: restore not verified: %s" % (m, o.get("error", "")))
    if args["compress"] is not None:
        if o.get("compress") != args["compress"]:
            bad.append("%s: compress is %r, expected %r" % (m, o.get("compress"), args["compress"]))
        if args["compress"] == "zstd:auto":
            # Raw where the destination keeps up: no size bound, but every
            # chunk is counted one way or the other.
            if not o.get("bytes_stored", 0) > 0 or o.get("chunks_compressed", 0) + o.get("chunks_raw", 0) == 0:
                bad.append("%s: bytes_stored %s, chunks %s compressed + %s raw" % (
                    m, o.get("bytes_stored"), o.get("chunks_compressed"), o.get("chunks_raw")))
        elif not 0 < o.get("bytes_stored", 0) < o.get("mem_bytes", 0):
            bad.append("%s: bytes_stored %s for mem_bytes %s" % (m, o.get("bytes_stored"), o.get("mem_bytes")))
    if args["compress_threads"] is not None and o.get("compress_threads", 0) != args["compress_threads"]:
        bad.append("%s: compress_threads %r, asked %d" % (m, o.get("compress_threads"), args["compress_threads"]))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    path = argv[1]
    args = {"want": True, "contract": False, "restore": False, "compress": None, "compress_threads": None}
    methods = []
    it = iter(argv[2:])
    for a in it:
        if a == "--want":
            args["want"] = next(it) == "true"
        elif a == "--contract":
            args["contract"] = True
        elif a == "--restore":
            args["restore"] = True
        elif a == "--compress":
            args["compress"] = next(it)
        elif a == "--compress-threads":
            args["compress_threads"] = int(next(it))
        elif a.startswith("--"):
            print("bench_check.py: unknown option %s" % a)
            return 2
        else:
            methods.append(a)
    bad, seen = [], {}
    for n, line in enumerate(open(path), 1):
        try:
            o = json.loads(line)
        except ValueError as e:
            bad.append("line %d is not JSON (%s): %s" % (n, e, line.strip()))
            continue
        m = o.get("method")
        seen[m] = seen.get(m, 0) + 1
        if "skipped" in o:
            print("note: %s skipped: %s" % (m, o["skipped"]))
            continue
        check_line(o, args, bad)
    for m in methods:
        if seen.get(m) != 1:
            bad.append("method %s has %d result lines" % (m, seen.get(m, 0)))
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
