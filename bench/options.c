/* options.c - `bgsnap bench`'s command line: its help text and parsing
 * into struct bench_opts (bench.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/dest.h"

/* One text, kept whole so that it reads as the help it prints. */
void bench_usage(FILE *f)
{
	fprintf(f,
"usage: bgsnap bench [OPTIONS]\n"
"\n"
"Allocates SIZE of anonymous memory, starts N writer threads that keep writing\n"
"it, takes one snapshot per method, verifies each snapshot page by page against\n"
"the content at the pause instant, and prints one result per method.\n"
"\n"
"  --mem SIZE            memory to snapshot (default 256M; K/M/G suffixes)\n"
"  --threads N           writer threads, 1..%u (default 2)\n"
"  --pattern P           seq | random | hot (default random): each thread owns the\n"
"                        pages p with p %% N == thread; seq sweeps them in order,\n"
"                        random picks uniformly (seeded), hot sends 90%% of the\n"
"                        writes to 1/32 of them\n"
"  --method M            uffd | uffd-signal | mprotect | fork | stop | auto, a\n"
"                        comma-separated list of these, or all (= uffd,uffd-signal,\n"
"                        mprotect,fork,stop); default uffd.  With several methods a\n"
"                        method the engine refuses here is reported as skipped\n"
"                        (JSON \"skipped\": reason) and does not fail the run\n"
"  --out DEST            where each snapshot goes: PATH or file:PATH (default: a\n"
"                        file in $TMPDIR, removed after verification; with several\n"
"                        methods, PATH.METHOD each), or a stream: exec:COMMAND\n"
"                        (into /bin/sh -c COMMAND's stdin, a new one per method,\n"
"                        $BGSNAP_METHOD set to the method), unix:SOCKET (a new\n"
"                        connection per method), fd:N (one method, no --repeat).\n"
"                        The engine streams into a pipe and a thread copies every\n"
"                        byte to DEST and to an unlinked file in $TMPDIR: \"verified\"\n"
"                        and --restore are about that copy (JSON \"verified_of\":\n"
"                        \"copy\"), i.e. exactly what was sent (exec:bgsnap verify -\n"
"                        has the receiver check it too).\n"
"                        A receiver that goes away or exits non-zero fails that\n"
"                        snapshot (JSON \"error\" names DEST); timings include the\n"
"                        copy (JSON \"out_kind\": file, exec, unix or fd)\n"
"  --buffer SIZE         fault copy buffer (default 64M; 4K = maximal back-pressure)\n"
"  --max-rate SIZE       limit the snapshot writer to SIZE bytes per second (K/M/G:\n"
"                        binary units; 0, the default: none); stop ignores it\n"
"  --fault-around N      pages saved per write fault (power of two, 1..64)\n"
"  --finish-paused P     uffd, uffd-signal, mprotect: finish the snapshot with the\n"
"                        host paused when its faults cost it more than P %% of what\n"
"                        stopping it would (BGSNAP_PARAM_FINISH_PAUSED); off (0),\n"
"                        always (-1) or a percentage (100: break-even); default: off\n"
"  --progress            a progress line on stderr while each snapshot is written,\n"
"                        even when stderr is not a terminal (shown if it is one)\n"
"  --quiet               no progress line\n"
"  --no-pre-protect      uffd, uffd-signal, mprotect: all of the write-protect in the\n"
"                        pause, not before it with the pages written since in it\n"
"  --buffered-io         uffd, uffd-signal, mprotect: write the snapshot file through\n"
"                        the page cache instead of O_DIRECT from a writing thread\n"
"                        (the library's default for them; stop and fork always use\n"
"                        the page cache; JSON \"direct_io\")\n"
"  --noise               while each snapshot runs, another process writes random\n"
"                        pages of its own SIZE of memory (JSON \"noise\": true): with\n"
"                        --method stop it shows what a workload running beside a\n"
"                        save costs the save on this machine (bench/contention.sh)\n"
"  --repeat N            run the method list N times (1..50) in this process and\n"
"                        end with the median over the rounds of each ratio taken\n"
"                        within a round (JSON: \"round\" on each line, then one\n"
"                        \"summary\" line per method): these machines are noisy\n"
"  --wp-threads N        threads for the pause's write-protect (default: library's\n"
"                        choice: 1 below 256 MiB, else up to 4 by CPUs)\n"
"  --memory K            what backs the memory: anon (default: private anonymous,\n"
"                        MADV_NOHUGEPAGE), thp (MADV_HUGEPAGE), hugetlb (private\n"
"                        MAP_HUGETLB, 2 MiB pages: reserve them in\n"
"                        /proc/sys/vm/nr_hugepages; fork needs as many again\n"
"                        for its copies), memfd (a memfd mapped shared),\n"
"                        memfd-hugetlb (memfd_create MFD_HUGETLB, shared); the\n"
"                        hugetlb kinds need SIZE in whole 2 MiB.  Shared kinds\n"
"                        cannot be snapshotted by fork (JSON \"memory\",\n"
"                        \"huge_pages_before\", \"huge_pages_after\": the\n"
"                        region's 2 MiB pages from /proc/self/smaps just before\n"
"                        the start and after the end)\n"
"  --thp                 the same as --memory thp\n"
"  --duration-before MS  write-rate window before each snapshot (default 300),\n"
"                        after the writers reached a steady rate (two 50 ms\n"
"                        windows within 20%%, at most 5 s; skipped with 0)\n"
"  --duration-after MS   how long the writers are watched after each snapshot for\n"
"                        the host's lost work (host_lost_ms: 50 ms windows from the\n"
"                        pause until the rate is back within 5%% of the rate before\n"
"                        for two windows; default and most 5000, the measure's\n"
"                        tail; 0: not measured, no wait)\n"
"  --series PATH         append the writers' progress around each snapshot to PATH,\n"
"                        one line per 50 ms window: method, seconds since the\n"
"                        pause, rate / rate before, 1 when the snapshot had ended\n"
"  --seed N              seed of the random and hot patterns (default 1)\n"
"  --no-prefault         before each method the written pages are normally made\n"
"                        present and writable (MADV_POPULATE_WRITE, content kept)\n"
"                        so every method starts from the same state; with this the\n"
"                        initially zero pages stay never-populated until written\n"
"                        (with a short --duration-before, the first method then sees\n"
"                        first writes to never-populated pages during the snapshot)\n"
"  --fill F              what the memory holds before it is written: mixed (default:\n"
"                        a sequence per page, some pages zero), random (does not\n"
"                        compress), text (words of a small vocabulary, compresses\n"
"                        about 3x like a real heap) or zero (JSON \"fill\")\n"
"  --compress C          none | zstd | zstd:LEVEL (1..19, -1..-7 faster; default -7):\n"
"                        page data in zstd chunks of up to 4 MiB (JSON \"compress\";\n"
"                        the file's size is \"bytes_stored\"); zstd:auto[:LEVEL]:\n"
"                        each chunk compressed only while the destination (disk,\n"
"                        stream, --max-rate) is slower than the compressors, else\n"
"                        stored raw (JSON \"chunks_compressed\", \"chunks_raw\")\n"
"  --compress-threads N  threads that compress beside the writer, 0..64 (default 0:\n"
"                        the library's choice; JSON \"compress_threads\")\n"
"  --restore R           eager | lazy | map | both (eager,lazy) | all, or a\n"
"                        comma list: then restore the verified snapshot into\n"
"                        fresh memory and check it with the same oracle; map\n"
"                        (bgsnap_restore_map) implies --page-aligned\n"
"  --page-aligned        write the page-aligned layout (format version 4: PAGES\n"
"                        data at page-aligned file offsets; JSON \"page_aligned\")\n"
"  --restore-uncached    with --restore: drop the snapshot file from the page\n"
"                        cache (POSIX_FADV_DONTNEED) before the file read and\n"
"                        before each restore, as after drop_caches (JSON\n"
"                        \"restore_uncached\")\n"
"  --json                one JSON object per line and method\n"
"  --probe-wp            first time the raw primitives once on the filled memory, no\n"
"                        writer running (one UFFDIO_WRITEPROTECT of it and its\n"
"                        removal, mprotect and back, fork), print them (JSON: a\n"
"                        line with \"probe\":\"raw\"), then run the methods only\n"
"                        if --method was given; the table then adds pause / raw\n"
"                        wp ratios\n"
"  --help                this text\n"
"\n"
"JSON fields: method, mem_bytes, threads, pattern, buffer_bytes, thp, pause_us,\n"
"wp_us (write-protect step; fork(): for fork), total_ms (start to committed),\n"
"bytes_written, bytes_stored (the file's size), writer_us, achieved_bytes_per_s\n"
"(bytes_written over writer_us), max_bytes_per_s, compress (with chunks_compressed and\n"
"chunks_raw when compressing), pages_total, pages_zero, pages_faulted, unprotect_calls,\n"
"unprotect_ms (the writer removing protection from saved pages), commit_ms\n"
"(index, trailer, fsync and rename at the end), prewp_ms and reprotect_pages (the\n"
"write-protect before the pause and the pages written meanwhile that the pause\n"
"protected again; 0 without pre-protect), finished_paused, finish_pause_ms and\n"
"finish_pages (the snapshot finished with the host paused: that pause and the\n"
"pages written in it), finish_hook_ms (of that pause, the pause hook's call), fault_wait_ms and fault_threads (the host threads' summed\n"
"wait in write faults, and how many faulted in one 50 ms window at most),\n"
"first_write_us_p50/p99/max and first_write_samples (each writer times its first\n"
"write to each of its pages from the resume until the snapshot ends: the cost of\n"
"the method's write tracking as the workload sees it, kernel copy-on-write for\n"
"fork), first_write_traps and trap_us_p50/p99 (the same over the first writes\n"
"that took >= 2 us, i.e. trapped, rather than finding their page already saved),\n"
"writes_per_s_before, writes_per_s_during, extra_mem_peak_bytes with\n"
"extra_mem_source (\"engine\": the engine's stats; \"estimate\": for fork when the\n"
"engine reports 0, the pages first written during the snapshot x 4096),\n"
"verified; \"error\" or \"skipped\" when the method did not complete.\n"
"With --restore: restore_ms (eager: bgsnap_restore until all memory is back),\n"
"restore_read_ms (the same file read with 1 MiB preads, as dd does),\n"
"restore_file_bytes, resume_us (lazy: until the memory is usable),\n"
"lazy_total_ms, lazy_pages_demand, lazy_pages_prefetched, lazy_touch_p50_us and\n"
"lazy_touch_p99_us (first read of 256 pages spread over the memory, at once),\n"
"restore_verified,\n"
"restore_huge_pages (eager: 2 MiB pages of the restored memory, AnonHugePages in\n"
"/proc/self/smaps), restore_map_ms (map: bgsnap_restore_map with every checksum\n"
"checked through the mapping), restore_map_noverify_ms (the same without the\n"
"check), restore_map_mapped (1: mapped; 0: the library restored it by copy).\n"
"\n"
"Chains (options.chain; mprotect, or any --method):\n"
"  --incremental N        a full snapshot, then N incremental ones; before each,\n"
"                         the writers make F x pages writes (--dirty-fraction F,\n"
"                         default 0.01) and stay parked while it runs; the\n"
"                         chain's last image is verified.  One line per\n"
"                         snapshot; JSON: index, method, tracking, incremental,\n"
"                         depth, parent (the parent's file, null when full),\n"
"                         dirty_pages, pages_saved, bytes_written, file_bytes,\n"
"                         pause_us, scan_us, wp_us, total_ms, verified (null but\n"
"                         for the last)\n"
"  --reset-loop N         a full snapshot, then N rounds of writing K pages\n"
"                         (--dirty-pages K, default 44) and bgsnap_reset; then\n"
"                         N memcpy of the same K pages; JSON: resets_per_s,\n"
"                         reset_us_p50/p99, first_reset_us (the pages read from\n"
"                         the file), memcpy_us_p50/p99, ratio_p50, verified\n"
"\n"
"Exit status: 0 every snapshot verified, 1 a snapshot failed or did not verify,\n"
"2 bad usage.\n",
	        WL_MAX_THREADS);
}

enum {
	O_MEM = 256, O_THREADS, O_PATTERN, O_METHOD, O_OUT, O_BUFFER, O_THP, O_JSON, O_BEFORE, O_SEED, O_PROBE,
	O_NOPREFAULT, O_CORRUPT, O_RESTORE, O_UNCACHED, O_WPTHREADS, O_AROUND, O_REPEAT, O_NOPRE, O_NOISE, O_BUFIO,
	O_AFTER, O_SERIES, O_COMPRESS, O_FILL, O_MAXRATE, O_INCR, O_DFRAC, O_RESETS, O_DPAGES, O_MEMORY, O_CTHREADS,
	O_ALIGN, O_FINISH,
};

static const struct option long_opts[] = {
	{ "mem", required_argument, NULL, O_MEM },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "pattern", required_argument, NULL, O_PATTERN },
	{ "method", required_argument, NULL, O_METHOD },
	{ "out", required_argument, NULL, O_OUT },
	{ "buffer", required_argument, NULL, O_BUFFER },
	{ "thp", no_argument, NULL, O_THP },
	{ "memory", required_argument, NULL, O_MEMORY },
	{ "json", no_argument, NULL, O_JSON },
	{ "duration-before", required_argument, NULL, O_BEFORE },
	{ "duration-after", required_argument, NULL, O_AFTER },
	{ "series", required_argument, NULL, O_SERIES },
	{ "seed", required_argument, NULL, O_SEED },
	{ "probe-wp", no_argument, NULL, O_PROBE },
	{ "no-prefault", no_argument, NULL, O_NOPREFAULT },
	{ "restore", required_argument, NULL, O_RESTORE },
	{ "restore-uncached", no_argument, NULL, O_UNCACHED },
	{ "wp-threads", required_argument, NULL, O_WPTHREADS },
	{ "fault-around", required_argument, NULL, O_AROUND },
	{ "finish-paused", required_argument, NULL, O_FINISH },
	{ "no-pre-protect", no_argument, NULL, O_NOPRE },
	{ "noise", no_argument, NULL, O_NOISE },
	{ "buffered-io", no_argument, NULL, O_BUFIO },
	{ "repeat", required_argument, NULL, O_REPEAT },
	{ "compress", required_argument, NULL, O_COMPRESS },
	{ "compress-threads", required_argument, NULL, O_CTHREADS },
	{ "page-aligned", no_argument, NULL, O_ALIGN },
	{ "fill", required_argument, NULL, O_FILL },
	{ "max-rate", required_argument, NULL, O_MAXRATE },
	{ "incremental", required_argument, NULL, O_INCR },
	{ "dirty-fraction", required_argument, NULL, O_DFRAC },
	{ "reset-loop", required_argument, NULL, O_RESETS },
	{ "dirty-pages", required_argument, NULL, O_DPAGES },
	/* Test hook, not in --help: damages the verification on purpose
	 * (steps: wrong step counts; page: one flipped byte in a page read
	 * back; file: one flipped byte in the file) to show it fails. */
	{ "corrupt-check", required_argument, NULL, O_CORRUPT },
	PROGRESS_OPTS,
	CLI_OPT_HELP,
	CLI_OPT_END,
};

static int parse_methods(const char *s, struct bench_opts *o)
{
	if (!strcmp(s, "all")) {
		static const int all[] = { BGSNAP_METHOD_UFFD, BGSNAP_METHOD_UFFD_SIGNAL, BGSNAP_METHOD_MPROTECT,
		                           BGSNAP_METHOD_FORK, BGSNAP_METHOD_STOP };
		o->nmethods = 5;
		memcpy(o->methods, all, sizeof(all));
		o->list = true;
		return 0;
	}
	char buf[256];
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	o->nmethods = 0;
	char *save = NULL;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int m = bgsnap_method_parse(tok);
		if (m < 0 || o->nmethods >= BENCH_MAX_METHODS)
			return -EINVAL;
		o->methods[o->nmethods++] = m;
	}
	o->list = o->nmethods > 1;
	return o->nmethods ? 0 : -EINVAL;
}

/* The options that are only switched on; false if c is not one. */
static bool flag_option(struct bench_opts *o, int c)
{
	switch (c) {
	case O_THP: o->memory = WL_MEM_THP; break;
	case O_UNCACHED: o->restore_uncached = true; break;
	case O_ALIGN: o->page_aligned = true; break;
	case O_NOPRE: o->no_pre_protect = true; break;
	case O_BUFIO: o->buffered_io = true; break;
	case O_NOISE: o->noise = true; break;
	case O_JSON: o->json = true; break;
	case O_PROBE: o->probe_wp = true; break;
	case O_NOPREFAULT: o->no_prefault = true; break;
	default: return false;
	}
	return true;
}

static int size_option(struct bench_opts *o, int c, const char *arg)
{
	uint64_t v;
	if (c == O_MEM) {
		if (cli_parse_size(arg, &v) || v < 16 * WL_PAGE || v % WL_PAGE) {
			cli_error("--mem: '%s' is not a size of at least 64K in whole 4K pages", arg);
			return -EINVAL;
		}
		o->mem = v;
	} else if (c == O_MAXRATE) {
		if (cli_parse_size(arg, &v)) {
			cli_error("--max-rate: '%s' is not a size (bytes per second)", arg);
			return -EINVAL;
		}
		o->max_rate = v;
	} else {
		if (cli_parse_size(arg, &v) || v == 0) {
			cli_error("--buffer: '%s' is not a size", arg);
			return -EINVAL;
		}
		o->buffer = v;
	}
	return 0;
}

/* A decimal option value in [lo, hi] into *out; 0 or -EINVAL after saying
 * why. */
static int number(const char *opt, const char *arg, uint64_t lo, uint64_t hi, unsigned *out)
{
	uint64_t v;
	if (!cli_opt_number(opt, arg, lo, hi, &v))
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* The options that take a number. */
static int number_option(struct bench_opts *o, int c, const char *arg)
{
	uint64_t v;
	int rc = 0;
	switch (c) {
	case O_THREADS: return number("threads", arg, 1, WL_MAX_THREADS, &o->threads);
	case O_REPEAT: return number("repeat", arg, 1, REPEAT_MAX, &o->repeat);
	case O_CTHREADS: return number("compress-threads", arg, 0, 64, &o->compress_threads);
	case O_AFTER: return number("duration-after", arg, 0, 5000, &o->after_ms);
	case O_WPTHREADS:
		rc = number("wp-threads", arg, 0, 100000, &o->wp_threads);
		if (o->wp_threads > 16)
			o->wp_threads = 16;
		return rc;
	case O_AROUND:
		if (!cli_parse_u64(arg, 10, 1, 64, &v) || (v & (v - 1))) {
			cli_error("--fault-around: '%s' is not a power of two in 1..64", arg);
			return -EINVAL;
		}
		o->fault_around = (unsigned)v;
		return 0;
	case O_FINISH:
		if (!strcmp(arg, "off")) {
			o->finish_paused = 0;
		} else if (!strcmp(arg, "always") || !strcmp(arg, "-1")) {
			o->finish_paused = -1;
		} else if (cli_parse_u64(arg, 10, 0, 100000, &v)) {
			o->finish_paused = (int64_t)v;
		} else {
			cli_error("--finish-paused: '%s' is not off, always or a percentage 0..100000", arg);
			return -EINVAL;
		}
		o->finish_paused_set = true;
		return 0;
	case O_BEFORE:
		if (!cli_parse_u64(arg, 10, 0, 600000, &v)) {
			cli_error("--duration-before: '%s' is not a number of milliseconds", arg);
			return -EINVAL;
		}
		o->before_ms = (unsigned)v;
		return 0;
	default: /* O_SEED */
		if (cli_parse_u64(arg, 0, 0, UINT64_MAX, &o->seed))
			return 0;
		cli_error("--seed: '%s' is not a number", arg);
		return -EINVAL;
	}
}

/* The options that take a word (or a list of them). */
static int word_option(struct bench_opts *o, int c, const char *arg)
{
	static const char *const corrupt[] = { [CORRUPT_STEPS] = "steps", [CORRUPT_PAGE] = "page",
	                                       [CORRUPT_FILE] = "file" };
	switch (c) {
	case O_PATTERN:
		if ((o->pattern = wl_pattern_parse(arg)) >= 0)
			return 0;
		cli_error("--pattern: '%s' is not seq, random or hot", arg);
		return -EINVAL;
	case O_METHOD:
		o->method_given = true;
		if (parse_methods(arg, o) == 0)
			return 0;
		cli_error("--method: '%s' is not all or a list of uffd, uffd-signal, mprotect, fork, stop, auto", arg);
		return -EINVAL;
	case O_MEMORY:
		if ((o->memory = wl_memory_parse(arg)) >= 0)
			return 0;
		cli_error("--memory: '%s' is not anon, thp, hugetlb, memfd or memfd-hugetlb", arg);
		return -EINVAL;
	case O_FILL:
		if ((o->fill = wl_fill_parse(arg)) >= 0)
			return 0;
		cli_error("--fill: '%s' is not mixed, random, text or zero", arg);
		return -EINVAL;
	case O_COMPRESS:
		return cli_parse_compress("--compress", arg, &o->compress, &o->compress_level);
	case O_RESTORE:
		if ((o->restore = bench_restore_parse(arg)) >= 0) {
			if (o->restore & BENCH_RESTORE_MAP)
				o->page_aligned = true;
			return 0;
		}
		cli_error("--restore: '%s' is not eager, lazy, map, both, all or a comma list of them", arg);
		return -EINVAL;
	default: /* O_CORRUPT */
		for (int m = CORRUPT_STEPS; m <= CORRUPT_FILE; m++)
			if (!strcmp(arg, corrupt[m])) {
				o->corrupt = m;
				return 0;
			}
		cli_error("--corrupt-check: '%s' is not steps, page or file", arg);
		return -EINVAL;
	}
}

/* The chain benches' options (incremental.c, reset_loop.c). */
static int chain_option(struct bench_opts *o, int c, const char *arg)
{
	uint64_t v;
	char *end;
	switch (c) {
	case O_INCR:
		if (!cli_opt_number("--incremental", arg, 1, 100000, &v))
			return -EINVAL;
		o->incremental = (unsigned)v;
		return 0;
	case O_RESETS:
		if (!cli_opt_number("--reset-loop", arg, 1, 10000000, &v))
			return -EINVAL;
		o->reset_loop = (unsigned)v;
		return 0;
	case O_DPAGES:
		if (!cli_opt_number("--dirty-pages", arg, 1, UINT64_MAX, &o->dirty_pages))
			return -EINVAL;
		return 0;
	default: /* O_DFRAC */
		errno = 0;
		o->dirty_fraction = strtod(arg, &end);
		if (errno || end == arg || *end || !(o->dirty_fraction > 0 && o->dirty_fraction <= 1)) {
			cli_error("--dirty-fraction: '%s' is not a fraction in (0, 1]", arg);
			return -EINVAL;
		}
		return 0;
	}
}

/* --out: a destination (cli/dest.h) that must be a file. */
static int out_option(struct bench_opts *o, const char *arg)
{
	char err[320];
	struct dest d;
	if (dest_parse(arg, &d, err, sizeof(err)) < 0) {
		cli_error("--out: %s", err);
		return -EINVAL;
	}
	o->out_kind = (int)d.kind;
	o->out = d.kind == DEST_FILE ? d.arg : arg;
	return 0;
}

int bench_parse_args(int argc, char **argv, struct bench_opts *o)
{
	*o = (struct bench_opts){
		.mem = 256u << 20, .threads = 2, .pattern = WL_RANDOM, .nmethods = 1,
		.methods = { BGSNAP_METHOD_UFFD }, .buffer = 64u << 20, .before_ms = 300, .after_ms = 5000, .seed = 1,
		.repeat = 1,
	};
	int c, rc = 0;
	while (rc == 0 && (c = cli_getopt(argc, argv, "h", long_opts)) != -1) {
		if (c == 'h')
			return 1;
		if (c == '?')
			rc = -EINVAL;
		else if (c == O_MEM || c == O_BUFFER || c == O_MAXRATE)
			rc = size_option(o, c, optarg);
		else if (c == O_OUT)
			rc = out_option(o, optarg);
		else if (c == O_SERIES)
			o->series = optarg;
		else if (c == O_PATTERN || c == O_METHOD || c == O_RESTORE || c == O_CORRUPT || c == O_COMPRESS ||
		         c == O_FILL || c == O_MEMORY)
			rc = word_option(o, c, optarg);
		else if (c == O_INCR || c == O_DFRAC || c == O_RESETS || c == O_DPAGES)
			rc = chain_option(o, c, optarg);
		else if (progress_option(c, &o->progress))
			continue;
		else if (!flag_option(o, c))
			rc = number_option(o, c, optarg);
	}
	if (rc == 0 && o->restore_uncached && !o->restore) {
		cli_error("--restore-uncached needs --restore");
		rc = -EINVAL;
	}
	if (rc == 0 && o->incremental && o->reset_loop) {
		cli_error("--incremental and --reset-loop are separate benches");
		rc = -EINVAL;
	}
	if (rc == 0 && o->incremental && o->dirty_fraction == 0)
		o->dirty_fraction = 0.01;
	if (rc == 0 && o->reset_loop && o->dirty_pages == 0)
		o->dirty_pages = 44;
	if (rc == 0 && o->out_kind != DEST_FILE && (o->incremental || o->reset_loop)) {
		cli_error("--out %s: the chain benches write files; a stream destination takes one snapshot per "
		          "method", o->out);
		rc = -EINVAL;
	}
	if (rc == 0 && o->out_kind == DEST_FD && (o->nmethods > 1 || o->repeat > 1)) {
		cli_error("--out %s: one descriptor takes one snapshot: give one method and no --repeat (exec: and "
		          "unix: open the destination anew for each)", o->out);
		rc = -EINVAL;
	}
	if (rc == 0 && optind < argc) {
		cli_error("unexpected argument '%s'", argv[optind]);
		rc = -EINVAL;
	}
	o->thp = o->memory == WL_MEM_THP;
	return rc;
}
