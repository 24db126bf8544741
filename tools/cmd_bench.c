/*
 * cmd_bench.c - `bgsnap bench`: writer threads keep writing one anonymous
 * region while each method snapshots it; every snapshot is verified page by
 * page against the pause-instant content (bench/workload.h's oracle), and the
 * measurements of every method are taken the same way so they can be compared
 * as ratios within one run (design brief sections 5-7).
 *
 * Methods run one after another on the same memory in one process.  Between
 * them the writers are stopped and restarted; their step counts continue, so
 * the oracle only replays the steps made since the previous verification.
 * The JSON field names are a contract (design brief section 5).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../bench/workload.h"
#include "bench_restore.h"
#include "bgsnap.h"
#include "cli.h"

enum corrupt_mode { CORRUPT_NONE = 0, CORRUPT_STEPS, CORRUPT_PAGE, CORRUPT_FILE };

struct bench_opts {
	uint64_t mem;
	unsigned threads;
	int pattern;
	int methods[8];
	int nmethods;
	bool list;               /* several methods: refused ones are skipped */
	const char *out;
	uint64_t buffer;
	bool thp;
	bool no_pre_protect;
	bool noise;
	bool buffered_io;        /* options.direct_io = 0                    */
	bool json;
	unsigned before_ms;
	uint64_t seed;
	bool probe_wp;
	bool method_given;
	bool no_prefault;
	int corrupt;
	int restore;             /* BENCH_RESTORE_* mask, 0: none           */
	unsigned wp_threads;     /* 0: the library's choice                  */
	unsigned fault_around;   /* 0: the library's default                 */
	unsigned repeat;         /* rounds of the method list, 1..REPEAT_MAX */
};

#define REPEAT_MAX 50u

enum status { ST_OK = 0, ST_ERROR, ST_SKIPPED };

struct result {
	int method;              /* requested                               */
	int ran;                 /* stats.method                            */
	enum status status;
	char msg[512];
	struct bgsnap_stats st;
	struct wl_latency lat;
	double wps_before, wps_during;
	uint64_t extra_mem;
	const char *extra_src;
	bool verified;
	unsigned round;          /* 1..repeat                               */
	char path[4096];
	bool keep;
	struct bench_restore_result rr;
};

static void usage(FILE *f)
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
"  --out PATH            snapshot file (default: a file in $TMPDIR, removed after\n"
"                        verification); with several methods, PATH.METHOD each\n"
"  --buffer SIZE         fault copy buffer (default 64M; 4K = maximal back-pressure)\n"
"  --fault-around N      pages saved per write fault (power of two, 1..64)\n"
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
"  --thp                 back the memory with transparent huge pages\n"
"                        (MADV_HUGEPAGE; default MADV_NOHUGEPAGE)\n"
"  --duration-before MS  write-rate window before each snapshot (default 300),\n"
"                        after the writers reached a steady rate (two 50 ms\n"
"                        windows within 20%%, at most 5 s; skipped with 0)\n"
"  --seed N              seed of the random and hot patterns (default 1)\n"
"  --no-prefault         before each method the written pages are normally made\n"
"                        present and writable (MADV_POPULATE_WRITE, content kept)\n"
"                        so every method starts from the same state; with this the\n"
"                        initially zero pages stay never-populated until written\n"
"                        (with a short --duration-before, the first method then sees\n"
"                        first writes to never-populated pages during the snapshot)\n"
"  --restore R           eager | lazy | both: then restore the verified snapshot\n"
"                        into fresh memory and check it with the same oracle\n"
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
"bytes_written, pages_total, pages_zero, pages_faulted, unprotect_calls,\n"
"unprotect_ms (the writer removing protection from saved pages), commit_ms\n"
"(index, trailer, fsync and rename at the end), prewp_ms and reprotect_pages (the\n"
"write-protect before the pause and the pages written meanwhile that the pause\n"
"protected again; 0 without pre-protect),\n"
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
"lazy_total_ms, lazy_pages_demand, lazy_pages_prefetched, restore_verified.\n"
"\n"
"Exit status: 0 every snapshot verified, 1 a snapshot failed or did not verify,\n"
"2 bad usage.\n",
	        WL_MAX_THREADS);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static bool refused(int r)
{
	return r == -ENOTSUP || r == -ENOSYS || r == -EPERM || r == -EOPNOTSUPP;
}

/* A whole decimal (base 10) or C-style (base 0) number in [lo, hi]. */
static bool parse_u64(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	uint64_t v = strtoull(s, &end, base);
	if (errno || *end || end == s || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* An option's decimal value in [lo, hi]; says what is wrong if it is not. */
static bool opt_number(const char *opt, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (parse_u64(arg, 10, lo, hi, out))
		return true;
	fprintf(stderr, "bgsnap bench: --%s: '%s' is not a number in %" PRIu64 "..%" PRIu64 "\n", opt, arg, lo, hi);
	return false;
}

static int parse_methods(const char *s, struct bench_opts *o)
{
	if (!strcmp(s, "all")) {
		static const int all[] = { BGSNAP_METHOD_UFFD, BGSNAP_METHOD_UFFD_SIGNAL,
		                           BGSNAP_METHOD_MPROTECT, BGSNAP_METHOD_FORK,
		                           BGSNAP_METHOD_STOP };
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
		if (m < 0 || o->nmethods >= (int)(sizeof(o->methods) / sizeof(o->methods[0])))
			return -EINVAL;
		o->methods[o->nmethods++] = m;
	}
	o->list = o->nmethods > 1;
	return o->nmethods ? 0 : -EINVAL;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum { O_MEM = 256, O_THREADS, O_PATTERN, O_METHOD, O_OUT, O_BUFFER, O_THP, O_JSON,
	       O_BEFORE, O_SEED, O_PROBE, O_NOPREFAULT, O_CORRUPT, O_RESTORE, O_WPTHREADS, O_AROUND, O_REPEAT, O_NOPRE, O_NOISE, O_BUFIO, O_HELP };
	static const struct option lo[] = {
		{ "mem", required_argument, NULL, O_MEM },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "pattern", required_argument, NULL, O_PATTERN },
		{ "method", required_argument, NULL, O_METHOD },
		{ "out", required_argument, NULL, O_OUT },
		{ "buffer", required_argument, NULL, O_BUFFER },
		{ "thp", no_argument, NULL, O_THP },
		{ "json", no_argument, NULL, O_JSON },
		{ "duration-before", required_argument, NULL, O_BEFORE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "probe-wp", no_argument, NULL, O_PROBE },
		{ "no-prefault", no_argument, NULL, O_NOPREFAULT },
		{ "restore", required_argument, NULL, O_RESTORE },
		{ "wp-threads", required_argument, NULL, O_WPTHREADS },
		{ "fault-around", required_argument, NULL, O_AROUND },
		{ "no-pre-protect", no_argument, NULL, O_NOPRE },
		{ "noise", no_argument, NULL, O_NOISE },
		{ "buffered-io", no_argument, NULL, O_BUFIO },
		{ "repeat", required_argument, NULL, O_REPEAT },
		/* Test hook, not in --help: damages the verification on purpose
		 * (steps: wrong step counts; page: one flipped byte in a page read
		 * back; file: one flipped byte in the file) to show it fails. */
		{ "corrupt-check", required_argument, NULL, O_CORRUPT },
		{ "help", no_argument, NULL, O_HELP },
		{ 0, 0, 0, 0 },
	};
	*o = (struct bench_opts){
		.mem = 256u << 20, .threads = 2, .pattern = WL_RANDOM, .nmethods = 1,
		.methods = { BGSNAP_METHOD_UFFD }, .buffer = 64u << 20, .before_ms = 300, .seed = 1,
		.repeat = 1,
	};
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		uint64_t v;
		switch (c) {
		case O_MEM:
			if (parse_size(optarg, &v) || v < 16 * WL_PAGE || v % WL_PAGE) {
				fprintf(stderr, "bgsnap bench: --mem: '%s' is not a size of at least 64K in whole 4K pages\n", optarg);
				return -EINVAL;
			}
			o->mem = v;
			break;
		case O_THREADS:
			if (!opt_number("threads", optarg, 1, WL_MAX_THREADS, &v))
				return -EINVAL;
			o->threads = (unsigned)v;
			break;
		case O_PATTERN:
			o->pattern = wl_pattern_parse(optarg);
			if (o->pattern < 0) {
				fprintf(stderr, "bgsnap bench: --pattern: '%s' is not seq, random or hot\n", optarg);
				return -EINVAL;
			}
			break;
		case O_METHOD:
			o->method_given = true;
			if (parse_methods(optarg, o)) {
				fprintf(stderr, "bgsnap bench: --method: '%s' is not all or a list of uffd, uffd-signal, mprotect, fork, stop, auto\n", optarg);
				return -EINVAL;
			}
			break;
		case O_OUT:
			o->out = optarg;
			break;
		case O_BUFFER:
			if (parse_size(optarg, &v) || v == 0) {
				fprintf(stderr, "bgsnap bench: --buffer: '%s' is not a size\n", optarg);
				return -EINVAL;
			}
			o->buffer = v;
			break;
		case O_THP:
			o->thp = true;
			break;
		case O_NOPRE:
			o->no_pre_protect = true;
			break;
		case O_BUFIO:
			o->buffered_io = true;
			break;
		case O_NOISE:
			o->noise = true;
			break;
		case O_AROUND:
			if (!parse_u64(optarg, 10, 1, 64, &v) || (v & (v - 1))) {
				fprintf(stderr, "bgsnap bench: --fault-around: '%s' is not a power of two in 1..64\n", optarg);
				return -EINVAL;
			}
			o->fault_around = (unsigned)v;
			break;
		case O_REPEAT:
			if (!opt_number("repeat", optarg, 1, REPEAT_MAX, &v))
				return -EINVAL;
			o->repeat = (unsigned)v;
			break;
		case O_WPTHREADS:
			if (!opt_number("wp-threads", optarg, 0, 100000, &v))
				return -EINVAL;
			o->wp_threads = (unsigned)(v > 16 ? 16 : v);
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_BEFORE:
			if (!parse_u64(optarg, 10, 0, 600000, &v)) {
				fprintf(stderr, "bgsnap bench: --duration-before: '%s' is not a number of milliseconds\n", optarg);
				return -EINVAL;
			}
			o->before_ms = (unsigned)v;
			break;
		case O_SEED:
			if (!parse_u64(optarg, 0, 0, UINT64_MAX, &v)) {
				fprintf(stderr, "bgsnap bench: --seed: '%s' is not a number\n", optarg);
				return -EINVAL;
			}
			o->seed = v;
			break;
		case O_PROBE:
			o->probe_wp = true;
			break;
		case O_NOPREFAULT:
			o->no_prefault = true;
			break;
		case O_CORRUPT:
			if (!strcmp(optarg, "steps"))
				o->corrupt = CORRUPT_STEPS;
			else if (!strcmp(optarg, "page"))
				o->corrupt = CORRUPT_PAGE;
			else if (!strcmp(optarg, "file"))
				o->corrupt = CORRUPT_FILE;
			else {
				fprintf(stderr, "bgsnap bench: --corrupt-check: '%s' is not steps, page or file\n", optarg);
				return -EINVAL;
			}
			break;
		case O_RESTORE:
			o->restore = bench_restore_parse(optarg);
			if (o->restore < 0) {
				fprintf(stderr, "bgsnap bench: --restore: '%s' is not eager, lazy or both\n", optarg);
				return -EINVAL;
			}
			break;
		case O_HELP:
			return 1;
		default:
			fprintf(stderr, "bgsnap bench: unknown or incomplete option '%s'\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "bgsnap bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Hooks.                                                                    */

struct hook_ctx {
	wl *w;
	int paused;
	uint64_t steps[WL_MAX_THREADS];
};

static int hook_pause(void *ctx)
{
	struct hook_ctx *h = ctx;
	wl_pause(h->w);
	h->paused++;
	memcpy(h->steps, wl_paused_steps(h->w), sizeof(h->steps));
	return 0;
}

static int hook_save_state(bgsnap_state *st, void *ctx)
{
	struct hook_ctx *h = ctx;
	const struct wl_params *p = wl_get_params(h->w);
	uint8_t blob[32 + 8 * WL_MAX_THREADS];
	size_t n = wl_blob_size(p->threads);
	if (n > sizeof(blob))
		return -1;
	wl_blob_encode(blob, p, h->steps);
	return bgsnap_state_add(st, WL_BLOB_NAME, blob, n) == 0 ? 0 : -1;
}

static void hook_resume(void *ctx)
{
	struct hook_ctx *h = ctx;
	wl_resume(h->w, true);
}

/* ------------------------------------------------------------------------ */
/* Verification.                                                             */

static void report_mismatch(const char *method, const struct wl_mismatch *mm)
{
	fprintf(stderr,
	        "bgsnap bench: %s: page %" PRIu64 " differs at byte %u: expected %s%" PRId64
	        ", found %s%" PRId64 " (first word 0x%016" PRIx64 ")\n",
	        method, mm->page, mm->word * 8u,
	        mm->expected_step < 0 ? "the initial content" : "the write of step ",
	        mm->expected_step < 0 ? (int64_t)0 : mm->expected_step,
	        mm->found_step < 0 ? "no write, value " : "the write of step ",
	        mm->found_step < 0 ? (int64_t)0 : mm->found_step, mm->found_word0);
}

static int flip_file_byte(const char *path, char *msg, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, len, "--corrupt-check file: open %.300s: %s", path, strerror(errno));
		return -1;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	uint8_t b = 0;
	off_t at = size / 2;
	int ok = size > 0 && pread(fd, &b, 1, at) == 1;
	b ^= 0x10;
	ok = ok && pwrite(fd, &b, 1, at) == 1;
	close(fd);
	if (!ok) {
		snprintf(msg, len, "--corrupt-check file: cannot flip a byte of %.300s", path);
		return -1;
	}
	return 0;
}

/*
 * Checks the snapshot at `path` against the oracle.  `paused` holds the step
 * counts the pause hook recorded; the file's own state blob must agree.
 * Returns true if every page matches.  `oracle` is advanced to the counts.
 */
static bool verify_snapshot(const char *method, const char *path, wl *w, wl_oracle *oracle,
                            const uint64_t *paused, int corrupt, char *msg, size_t msg_len)
{
	const struct wl_params *wp = wl_get_params(w);
	char err[512] = "";
	bgsnap_reader *r = NULL;
	wl_oracle *check = oracle, *fresh = NULL;
	bool ok = false;

	if (corrupt == CORRUPT_FILE && flip_file_byte(path, msg, msg_len))
		return false;
	int rc = bgsnap_reader_open(&r, path, err, sizeof(err));
	if (rc < 0) {
		snprintf(msg, msg_len, "cannot read the snapshot: %s", err[0] ? err : strerror(-rc));
		return false;
	}
	const void *blob;
	size_t blen;
	struct wl_params bp;
	uint64_t steps[WL_MAX_THREADS];
	rc = bgsnap_reader_find_state(r, WL_BLOB_NAME, &blob, &blen);
	if (rc < 0) {
		snprintf(msg, msg_len, "state blob %s missing: %s", WL_BLOB_NAME, bgsnap_reader_errmsg(r));
		goto out;
	}
	if (wl_blob_decode(blob, blen, &bp, steps) || bp.npages != wp->npages ||
	    bp.threads != wp->threads || bp.pattern != wp->pattern || bp.seed != wp->seed) {
		snprintf(msg, msg_len, "state blob %s does not describe this workload", WL_BLOB_NAME);
		goto out;
	}
	for (unsigned t = 0; t < wp->threads; t++)
		if (steps[t] != paused[t]) {
			snprintf(msg, msg_len, "state blob: thread %u at step %" PRIu64 ", the pause recorded %" PRIu64,
			         t, steps[t], paused[t]);
			goto out;
		}
	rc = wl_oracle_advance(oracle, steps);
	if (rc < 0) {
		snprintf(msg, msg_len, "oracle: step counts went backwards");
		goto out;
	}
	if (corrupt == CORRUPT_STEPS) {
		/* Verify against counts one step short: the last write of thread 0
		 * is then unexpected, which must be caught. */
		steps[0] = steps[0] ? steps[0] - 1 : 0;
		if (wl_oracle_create(&fresh, wp) || wl_oracle_advance(fresh, steps)) {
			snprintf(msg, msg_len, "out of memory");
			goto out;
		}
		check = fresh;
	}

	int reg = bgsnap_reader_find_region(r, "mem");
	struct bgsnap_region_info ri;
	if (reg < 0 || bgsnap_reader_region(r, (unsigned)reg, &ri, sizeof ri) < 0 ||
	    ri.size != wl_mem_bytes(w)) {
		snprintf(msg, msg_len, "region \"mem\" missing or of the wrong size");
		goto out;
	}
	uint64_t seen = 0, bad = 0;
	struct wl_mismatch first = { 0 };
	struct bgsnap_record rec;
	bool flipped = false;
	uint8_t page[WL_PAGE];
	while ((rc = bgsnap_reader_next(r, &rec)) == 1) {
		if ((rec.kind != BGSNAP_REC_PAGES && rec.kind != BGSNAP_REC_ZERO) ||
		    rec.region != (uint32_t)reg)
			continue;
		for (uint64_t i = 0; i < rec.count; i++) {
			uint64_t pg = rec.first_page + i;
			struct wl_mismatch mm;
			bool good;
			if (rec.kind == BGSNAP_REC_ZERO) {
				good = wl_oracle_check_zero(check, pg, &mm);
			} else {
				const uint8_t *d = (const uint8_t *)rec.data + i * WL_PAGE;
				if (corrupt == CORRUPT_PAGE && !flipped) {
					memcpy(page, d, WL_PAGE);
					page[WL_PAGE / 2] ^= 1;
					d = page;
					flipped = true;
				}
				good = wl_oracle_check_page(check, pg, d, &mm);
			}
			seen++;
			if (!good) {
				if (bad < 5)
					report_mismatch(method, &mm);
				if (!bad)
					first = mm;
				bad++;
			}
		}
	}
	if (rc < 0) {
		snprintf(msg, msg_len, "reading the snapshot: %s", bgsnap_reader_errmsg(r));
		goto out;
	}
	if (seen != wp->npages) {
		snprintf(msg, msg_len, "the snapshot holds %" PRIu64 " pages of region mem, expected %" PRIu64,
		         seen, wp->npages);
		goto out;
	}
	if (corrupt == CORRUPT_PAGE && !flipped) {
		snprintf(msg, msg_len, "--corrupt-check page: no data page to damage");
		goto out;
	}
	if (bad) {
		snprintf(msg, msg_len, "%" PRIu64 " of %" PRIu64 " pages differ from the pause instant (first: page %" PRIu64 ")",
		         bad, seen, first.page);
		goto out;
	}
	ok = true;
out:
	wl_oracle_destroy(fresh);
	bgsnap_reader_close(r);
	return ok;
}

/* ------------------------------------------------------------------------ */
/* One method.                                                               */

static void snapshot_path(const struct bench_opts *o, int method, char *out, size_t len)
{
	const char *name = bgsnap_method_name(method);
	if (o->out && !o->list)
		snprintf(out, len, "%s", o->out);
	else if (o->out)
		snprintf(out, len, "%s.%s", o->out, name);
	else {
		const char *dir = getenv("TMPDIR");
		snprintf(out, len, "%s/bgsnap-bench.%ld.%s", dir && *dir ? dir : "/tmp", (long)getpid(), name);
	}
}

/*
 * Lets the writers reach their steady rate before anything is measured.  On
 * these VMs the first write to each page after it was filled costs a few
 * microseconds of hypervisor work (invisible to the guest as a fault), so a
 * fresh region writes up to 100x slower for a while; measuring a method then
 * would compare it against a different workload.  Stable = two consecutive
 * 50 ms windows within 20%; at most 5 s.
 */
static void warm_up(wl *w)
{
	double prev = 0;
	for (int i = 0; i < 100; i++) {
		double t0 = now_s();
		uint64_t s0 = wl_total_steps(w);
		sleep_ms(50);
		double rate = (double)(wl_total_steps(w) - s0) / (now_s() - t0);
		if (prev > 0 && rate > prev * 0.8 && rate < prev * 1.2)
			return;
		prev = rate;
	}
}

/*
 * The --noise process: its own `bytes` of anonymous memory, filled, then one
 * byte written in a random page at a time until it is killed.  Forked from
 * a process with running threads, it uses only system calls and plain
 * memory.  Returns the pid once it writes, or -errno.
 */
static pid_t noise_start(uint64_t bytes, bool thp)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int er = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return er;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(pfd[0]);
		uint8_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			_exit(1);
		madvise(m, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		memset(m, 1, bytes);
		char c = 1;
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		uint64_t x = 0x9E3779B97F4A7C15ull, pages = bytes / 4096;
		for (;;) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			m[(x % pages) * 4096 + (x >> 52)]++;
		}
	}
	close(pfd[1]);
	char c;
	ssize_t n;
	while ((n = read(pfd[0], &c, 1)) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	if (n != 1) {
		waitpid(pid, NULL, 0);
		return -ENOMEM;
	}
	return pid;
}

static void noise_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static void run_method(const struct bench_opts *o, wl *w, wl_oracle *oracle, int method,
                       struct result *res)
{
	memset(res, 0, sizeof(*res));
	res->method = res->ran = method;
	res->extra_src = "engine";
	snapshot_path(o, method, res->path, sizeof(res->path));
	res->keep = o->out != NULL;

	char why[256] = "";
	int r = bgsnap_method_probe(method, why, sizeof(why));
	if (r < 0) {
		res->status = o->list && refused(r) ? ST_SKIPPED : ST_ERROR;
		snprintf(res->msg, sizeof(res->msg), "%s", why[0] ? why : strerror(-r));
		return;
	}

	struct bgsnap_options opts;
	bgsnap_options_init(&opts);
	opts.method = method;
	opts.copy_buffer_bytes = o->buffer;
	opts.wp_threads = o->wp_threads;
	if (o->no_pre_protect)
		opts.pre_protect = 0;
	if (o->buffered_io)
		opts.direct_io = 0;
	bgsnap_engine *e = NULL;
	struct hook_ctx h = { .w = w };
	r = bgsnap_create(&e, &opts);
	if (r < 0) {
		res->status = o->list && refused(r) ? ST_SKIPPED : ST_ERROR;
		snprintf(res->msg, sizeof(res->msg), "bgsnap_create: %s", strerror(-r));
		return;
	}
	if (o->fault_around) {
		r = bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, o->fault_around);
		if (r < 0)
			goto fail;
	}
	r = bgsnap_add_region(e, "mem", wl_mem(w), wl_mem_bytes(w));
	if (r < 0)
		goto fail;
	struct bgsnap_hooks hooks = {
		.pause = hook_pause, .save_state = hook_save_state, .resume = hook_resume, .ctx = &h,
	};
	r = bgsnap_set_hooks(e, &hooks);
	if (r < 0)
		goto fail;

	char err[256];
	r = wl_start(w, err, sizeof(err));
	if (r < 0) {
		res->status = ST_ERROR;
		snprintf(res->msg, sizeof(res->msg), "starting the writers: %s", err);
		bgsnap_destroy(e);
		return;
	}
	/* Every thread must have written before the pause (the oracle checks
	 * then see at least one write per thread). */
	if (wl_wait_progress(w, 10000) < 0) {
		wl_stop(w);
		res->status = ST_ERROR;
		snprintf(res->msg, sizeof(res->msg), "the writer threads made no progress in 10 s");
		bgsnap_destroy(e);
		return;
	}
	if (o->before_ms)
		warm_up(w);
	double ta = now_s();
	uint64_t sa = wl_total_steps(w);
	sleep_ms(o->before_ms);
	double tb = now_s();
	uint64_t sb = wl_total_steps(w);
	/* No window, no rate: a few steps over microseconds would mean nothing. */
	res->wps_before = o->before_ms && tb > ta ? (double)(sb - sa) / (tb - ta) : 0;

	pid_t noise = 0;
	if (o->noise) {
		noise = noise_start(o->mem, o->thp);
		if (noise < 0) {
			wl_timing_off(w);
			wl_stop(w);
			res->status = ST_ERROR;
			snprintf(res->msg, sizeof(res->msg), "cannot start the --noise process: %s", strerror((int)-noise));
			bgsnap_destroy(e);
			return;
		}
	}
	r = bgsnap_start(e, res->path);
	if (r < 0) {
		noise_stop(noise);
		wl_timing_off(w);
		wl_stop(w);
		goto fail;
	}
	r = bgsnap_wait(e);
	noise_stop(noise);
	double tc = now_s();
	uint64_t sc = wl_total_steps(w);
	wl_timing_off(w);
	wl_stop(w);
	res->wps_during = tc > tb ? (double)(sc - sb) / (tc - tb) : 0;
	bgsnap_get_stats(e, &res->st, sizeof res->st);
	res->ran = res->st.method ? res->st.method : method;
	if (r < 0)
		goto fail;
	if (h.paused != 1) {
		res->status = ST_ERROR;
		snprintf(res->msg, sizeof(res->msg), "the pause hook ran %d times", h.paused);
		bgsnap_destroy(e);
		return;
	}
	if (wl_first_write_latency(w, &res->lat) < 0) {
		res->status = ST_ERROR;
		snprintf(res->msg, sizeof(res->msg), "out of memory");
		bgsnap_destroy(e);
		return;
	}
	res->extra_mem = res->st.extra_mem_peak;
	if (res->ran == BGSNAP_METHOD_FORK && res->extra_mem == 0) {
		res->extra_mem = res->lat.samples * WL_PAGE;
		res->extra_src = "estimate";
	}
	bgsnap_destroy(e);

	res->verified = verify_snapshot(bgsnap_method_name(res->ran), res->path, w, oracle, h.steps,
	                                o->corrupt, res->msg, sizeof(res->msg));
	/* The oracle now stands at the snapshot's step counts. */
	if (res->verified && o->restore)
		bench_restore(res->path, o->restore, o->thp, wl_mem_bytes(w), o->threads, oracle, &res->rr);
	if (!res->keep)
		unlink(res->path);
	res->status = ST_OK;
	return;

fail:
	res->status = o->list && refused(r) ? ST_SKIPPED : ST_ERROR;
	snprintf(res->msg, sizeof(res->msg), "%s", bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-r));
	bgsnap_destroy(e);
}

/* ------------------------------------------------------------------------ */
/* Output.                                                                   */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void print_json(FILE *f, const struct bench_opts *o, const struct result *res)
{
	fprintf(f, "{\"method\":");
	json_str(f, bgsnap_method_name(res->status == ST_OK ? res->ran : res->method));
	if (res->ran != res->method) {
		fprintf(f, ",\"requested\":");
		json_str(f, bgsnap_method_name(res->method));
	}
	fprintf(f, ",\"mem_bytes\":%" PRIu64 ",\"threads\":%u,\"pattern\":\"%s\",\"buffer_bytes\":%" PRIu64
	        ",\"thp\":%s", o->mem, o->threads, wl_pattern_name(o->pattern), o->buffer,
	        o->thp ? "true" : "false");
	if (o->noise)
		fprintf(f, ",\"noise\":true");
	fprintf(f, ",\"direct_io\":%s", res->st.direct_io ? "true" : "false");
	if (o->repeat > 1)
		fprintf(f, ",\"round\":%u", res->round);
	if (res->status == ST_SKIPPED) {
		fprintf(f, ",\"skipped\":");
		json_str(f, res->msg);
		fprintf(f, "}\n");
		return;
	}
	if (res->status == ST_OK) {
		const struct bgsnap_stats *s = &res->st;
		fprintf(f,
		        ",\"pause_us\":%" PRIu64 ",\"wp_us\":%" PRIu64 ",\"total_ms\":%.3f"
		        ",\"bytes_written\":%" PRIu64 ",\"pages_total\":%" PRIu64 ",\"pages_zero\":%" PRIu64
		        ",\"pages_faulted\":%" PRIu64 ",\"unprotect_calls\":%" PRIu64
		        ",\"first_write_us_p50\":%.2f,\"first_write_us_p99\":%.2f,\"first_write_us_max\":%.2f"
		        ",\"first_write_samples\":%" PRIu64
		        ",\"first_write_traps\":%" PRIu64 ",\"trap_us_p50\":%.2f,\"trap_us_p99\":%.2f"
		        ",\"writes_per_s_before\":%.0f,\"writes_per_s_during\":%.0f"
		        ",\"extra_mem_peak_bytes\":%" PRIu64 ",\"extra_mem_source\":\"%s\""
		        ",\"unprotect_ms\":%.1f,\"commit_ms\":%.1f,\"prewp_ms\":%.3f,\"reprotect_pages\":%" PRIu64,
		        s->pause_us, s->wp_us, s->total_us / 1000.0, s->bytes_written, s->pages_total,
		        s->pages_zero, s->pages_faulted, s->unprotect_calls, res->lat.p50_us,
		        res->lat.p99_us, res->lat.max_us, res->lat.samples, res->lat.traps,
		        res->lat.trap_p50_us, res->lat.trap_p99_us, res->wps_before,
		        res->wps_during, res->extra_mem, res->extra_src, s->unprotect_us / 1000.0,
		        s->commit_us / 1000.0, s->prewp_us / 1000.0, s->reprotect_pages);
		if (res->keep) {
			fprintf(f, ",\"out\":");
			json_str(f, res->path);
		}
	}
	if (res->status == ST_OK && o->restore) {
		const struct bench_restore_result *rr = &res->rr;
		if (rr->which & BENCH_RESTORE_EAGER)
			fprintf(f, ",\"restore_ms\":%.3f,\"restore_read_ms\":%.3f,\"restore_file_bytes\":%" PRIu64,
			        rr->restore_ms, rr->read_ms, rr->file_bytes);
		if (rr->which & BENCH_RESTORE_LAZY)
			fprintf(f, ",\"resume_us\":%" PRIu64 ",\"lazy_total_ms\":%.3f,\"lazy_pages_demand\":%" PRIu64
			        ",\"lazy_pages_prefetched\":%" PRIu64, rr->resume_us, rr->lazy_total_ms, rr->lazy_demand,
			        rr->lazy_prefetched);
		fprintf(f, ",\"restore_verified\":%s", rr->which && rr->verified ? "true" : "false");
		if (!rr->verified && rr->msg[0]) {
			fprintf(f, ",\"restore_error\":");
			json_str(f, rr->msg);
		}
	}
	fprintf(f, ",\"verified\":%s", res->status == ST_OK && res->verified ? "true" : "false");
	if (res->status == ST_ERROR || (res->status == ST_OK && !res->verified)) {
		fprintf(f, ",\"error\":");
		json_str(f, res->msg);
	}
	fprintf(f, "}\n");
	fflush(f);
}

static const struct result *find_ok(const struct result *rs, int n, int method)
{
	for (int i = 0; i < n; i++)
		if (rs[i].status == ST_OK && rs[i].ran == method)
			return &rs[i];
	return NULL;
}

static void ratio(const char *what, double a, double b)
{
	if (b > 0)
		printf("  %-40s %8.3g   (%.1f / %.1f)\n", what, a / b, a, b);
}

static void print_table(const struct bench_opts *o, const struct result *rs, int n, double raw_wp_us)
{
	printf("bench: %" PRIu64 " MiB, %u writer thread%s, pattern %s, copy buffer %" PRIu64 " KiB, %s\n\n",
	       o->mem >> 20, o->threads, o->threads == 1 ? "" : "s", wl_pattern_name(o->pattern),
	       o->buffer >> 10, o->thp ? "THP" : "4 KiB pages");
	printf("%-11s %9s %9s %9s %9s %9s %8s %9s %9s %9s %11s %11s %9s %s\n", "method", "pause_us",
	       "wp_us", "prewp_ms", "total_ms", "MiB_out", "faulted", "fw_p50us", "fw_p99us", "fw_max_us",
	       "w/s_before", "w/s_during", "extra_MiB", "verified");
	for (int i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		if (r->status != ST_OK) {
			printf("%-11s %s: %s\n", bgsnap_method_name(r->method),
			       r->status == ST_SKIPPED ? "skipped" : "error", r->msg);
			continue;
		}
		const struct bgsnap_stats *s = &r->st;
		printf("%-11s %9" PRIu64 " %9" PRIu64 " %9.1f %9.1f %9.1f %8" PRIu64 " %9.1f %9.1f %9.1f %11.0f %11.0f %9.1f%s %s\n",
		       bgsnap_method_name(r->ran), s->pause_us, s->wp_us, s->prewp_us / 1000.0, s->total_us / 1000.0,
		       s->bytes_written / 1048576.0, s->pages_faulted, r->lat.p50_us, r->lat.p99_us,
		       r->lat.max_us, r->wps_before, r->wps_during, r->extra_mem / 1048576.0,
		       strcmp(r->extra_src, "engine") ? "*" : " ", r->verified ? "yes" : "NO");
	}
	for (int i = 0; o->restore && i < n; i++) {
		const struct bench_restore_result *rr = &rs[i].rr;
		if (rs[i].status != ST_OK || !rs[i].verified || !rr->which)
			continue;
		printf("restore %-11s", bgsnap_method_name(rs[i].ran));
		if (rr->which & BENCH_RESTORE_EAGER)
			printf(" eager %.1f ms (file read %.1f ms, throughput %.2fx of it)", rr->restore_ms, rr->read_ms,
			       rr->restore_ms > 0 ? rr->read_ms / rr->restore_ms : 0);
		if (rr->which & BENCH_RESTORE_LAZY)
			printf(" lazy usable in %" PRIu64 " us (all in %.1f ms)", rr->resume_us, rr->lazy_total_ms);
		printf(", verified %s\n", rr->verified ? "yes" : "NO");
	}
	const struct result *uffd = find_ok(rs, n, BGSNAP_METHOD_UFFD);
	const struct result *sig = find_ok(rs, n, BGSNAP_METHOD_UFFD_SIGNAL);
	const struct result *mp = find_ok(rs, n, BGSNAP_METHOD_MPROTECT);
	const struct result *fk = find_ok(rs, n, BGSNAP_METHOD_FORK);
	const struct result *stp = find_ok(rs, n, BGSNAP_METHOD_STOP);
	bool any = false;
	for (int i = 0; i < n; i++)
		any |= rs[i].status == ST_OK && rs[i].ran == BGSNAP_METHOD_FORK && strcmp(rs[i].extra_src, "engine");
	if (any)
		printf("(* estimated: pages first written during the snapshot x 4 KiB)\n");
	if (!((fk || stp) && n >= 2) && !(raw_wp_us > 0))
		return;
	printf("\nratios (same run):\n");
	const struct result *tracked[] = { uffd, sig, mp };
	for (int i = 0; i < 3; i++) {
		const struct result *r = tracked[i];
		if (!r)
			continue;
		char what[64];
		const char *name = bgsnap_method_name(r->ran);
		snprintf(what, sizeof(what), "pause %s / its wp_us", name);
		ratio(what, (double)r->st.pause_us, (double)r->st.wp_us);
		if (raw_wp_us > 0) {
			snprintf(what, sizeof(what), "pause %s / raw wp", name);
			ratio(what, (double)r->st.pause_us, raw_wp_us);
		}
		if (fk) {
			snprintf(what, sizeof(what), "pause %s / fork", name);
			ratio(what, (double)r->st.pause_us, (double)fk->st.pause_us);
			snprintf(what, sizeof(what), "first-write p50 %s / fork", name);
			ratio(what, r->lat.p50_us, fk->lat.p50_us);
			snprintf(what, sizeof(what), "trapped-write p50 %s / fork", name);
			ratio(what, r->lat.trap_p50_us, fk->lat.trap_p50_us);
		}
		if (stp) {
			snprintf(what, sizeof(what), "total %s / stop", name);
			ratio(what, r->st.total_us / 1000.0, stp->st.total_us / 1000.0);
		}
	}
	if (fk && stp)
		ratio("total fork / stop", fk->st.total_us / 1000.0, stp->st.total_us / 1000.0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of the rounds' values of `ratio_of` for one method, over the
 * rounds where both sides ran; -1 when none did. */
static double median_over(const struct result *rs, unsigned rounds, int n, int method,
                          double (*ratio_of)(const struct result *m, const struct result *round, int n))
{
	double v[REPEAT_MAX];
	unsigned k = 0;
	for (unsigned r = 0; r < rounds; r++) {
		const struct result *m = find_ok(rs + (size_t)r * (size_t)n, n, method);
		double x = m ? ratio_of(m, rs + (size_t)r * (size_t)n, n) : -1;
		if (x >= 0)
			v[k++] = x;
	}
	if (!k)
		return -1;
	qsort(v, k, sizeof(v[0]), cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static double r_total_stop(const struct result *m, const struct result *rd, int n)
{
	const struct result *s = find_ok(rd, n, BGSNAP_METHOD_STOP);
	return s && s->st.total_us ? (double)m->st.total_us / (double)s->st.total_us : -1;
}

static double r_pause_fork(const struct result *m, const struct result *rd, int n)
{
	const struct result *f = find_ok(rd, n, BGSNAP_METHOD_FORK);
	return f && f->st.pause_us ? (double)m->st.pause_us / (double)f->st.pause_us : -1;
}

static double r_trap_fork(const struct result *m, const struct result *rd, int n)
{
	const struct result *f = find_ok(rd, n, BGSNAP_METHOD_FORK);
	return f && f->lat.trap_p50_us > 0 ? m->lat.trap_p50_us / f->lat.trap_p50_us : -1;
}

static double r_total_ms(const struct result *m, const struct result *rd, int n)
{
	(void)rd;
	(void)n;
	return m->st.total_us / 1000.0;
}

static double r_pause_wp(const struct result *m, const struct result *rd, int n)
{
	(void)rd;
	(void)n;
	return m->st.wp_us ? (double)m->st.pause_us / (double)m->st.wp_us : -1;
}

/* After --repeat N: the median over the rounds of each ratio, taken within
 * each round (the brief: ratios side by side, not across noisy runs). */
static void print_summary(const struct bench_opts *o, const struct result *rs)
{
	static const struct {
		const char *name;
		double (*fn)(const struct result *, const struct result *, int);
	} cols[] = { { "total_ms", r_total_ms },       { "total_over_stop", r_total_stop },
	             { "pause_over_wp", r_pause_wp },  { "pause_over_fork", r_pause_fork },
	             { "trap_p50_over_fork", r_trap_fork } };
	if (!o->json)
		printf("\nmedian over %u rounds of each ratio taken within a round (- : not measured)\n"
		       "  %-12s %10s %16s %14s %16s %19s\n", o->repeat, "method", "total_ms", "total_over_stop",
		       "pause_over_wp", "pause_over_fork", "trap_p50_over_fork");
	for (int i = 0; i < o->nmethods; i++) {
		int m = o->methods[i];
		if (o->json) {
			printf("{\"summary\":true,\"method\":\"%s\",\"rounds\":%u", bgsnap_method_name(m), o->repeat);
			for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
				double v = median_over(rs, o->repeat, o->nmethods, m, cols[c].fn);
				if (v >= 0)
					printf(",\"%s_median\":%.4g", cols[c].name, v);
			}
			printf("}\n");
			continue;
		}
		printf("  %-12s", bgsnap_method_name(m));
		for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
			static const int wid[] = { 10, 16, 14, 16, 19 };
			double v = median_over(rs, o->repeat, o->nmethods, m, cols[c].fn);
			if (v >= 0)
				printf(" %*.4g", wid[c], v);
			else
				printf(" %*s", wid[c], "-");
		}
		printf("\n");
	}
}

static int probe_main(const struct bench_opts *o, wl *w, struct wp_probe_result *pr)
{
	char err[256] = "";
	int r = wp_probe(wl_mem(w), wl_mem_bytes(w), pr, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bgsnap bench: --probe-wp: %s\n", err);
		return EXIT_FAIL;
	}
	if (o->json)
		printf("{\"probe\":\"raw\",\"mem_bytes\":%" PRIu64 ",\"thp\":%s,\"wp_us\":%.1f,\"unwp_us\":%.1f"
		       ",\"mprotect_us\":%.1f,\"mprotect_rw_us\":%.1f,\"fork_us\":%.1f,\"uffd_features\":%" PRIu64
		       "}\n",
		       o->mem, o->thp ? "true" : "false", pr->wp_us, pr->unwp_us, pr->mprotect_us, pr->mprotect_rw_us,
		       pr->fork_us, pr->uffd_features);
	else
		printf("raw primitives on this memory (no writers): UFFDIO_WRITEPROTECT %.0f us, its removal %.0f us "
		       "(%.1fx), mprotect %.0f us, back %.0f us (%.1fx), fork %.0f us\n",
		       pr->wp_us, pr->unwp_us, pr->wp_us > 0 ? pr->unwp_us / pr->wp_us : 0, pr->mprotect_us,
		       pr->mprotect_rw_us, pr->mprotect_us > 0 ? pr->mprotect_rw_us / pr->mprotect_us : 0, pr->fork_us);
	fflush(stdout);
	return EXIT_OK;
}

/* Every method of the list once, into rs[0..nmethods).  Returns EXIT_OK or
 * EXIT_FAIL (a method failed or did not verify). */
static int run_round(const struct bench_opts *o, wl *w, wl_oracle *oracle, struct result *rs, unsigned round,
                     double raw_wp_us)
{
	int rc = EXIT_OK;
	for (int i = 0; i < o->nmethods; i++) {
		struct result *res = &rs[i];
		if (!o->no_prefault)
			wl_settle(w);
		run_method(o, w, oracle, o->methods[i], res);
		res->round = round;
		if (res->status == ST_ERROR || (res->status == ST_OK && !res->verified))
			rc = EXIT_FAIL;
		if (res->status == ST_OK && res->verified && o->restore && !res->rr.verified) {
			rc = EXIT_FAIL;
			fprintf(stderr, "bgsnap bench: %s: %s\n", bgsnap_method_name(res->method), res->rr.msg);
		}
		if (res->status == ST_SKIPPED && !o->json)
			fprintf(stderr, "bgsnap bench: %s skipped: %s\n",
			        bgsnap_method_name(res->method), res->msg);
		else if (res->status == ST_ERROR || (res->status == ST_OK && !res->verified))
			fprintf(stderr, "bgsnap bench: %s: %s\n", bgsnap_method_name(res->method), res->msg);
		if (o->json)
			print_json(stdout, o, res);
		fflush(stdout);
	}
	if (!o->json)
		print_table(o, rs, o->nmethods, raw_wp_us);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o;
	int r = parse_args(argc, argv, &o);
	if (r > 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (r < 0) {
		fprintf(stderr, "(bgsnap bench --help for usage)\n");
		return EXIT_USAGE;
	}

	struct wl_config cfg = {
		.params = { .npages = o.mem / WL_PAGE, .threads = o.threads, .pattern = o.pattern,
		            .seed = o.seed },
		.thp = o.thp,
	};
	char err[256];
	wl *w;
	r = wl_create(&w, &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "bgsnap bench: %s\n", err);
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	struct wp_probe_result raw = { .wp_us = -1 };
	if (o.probe_wp) {
		/* Time the primitives on the state every method starts from:
		 * the written pages populated (the never-written ones would
		 * otherwise be cheap holes to protect). */
		if (!o.no_prefault)
			wl_settle(w);
		r = probe_main(&o, w, &raw);
		if (r != EXIT_OK || !o.method_given) {
			wl_destroy(w);
			return r;
		}
	}
	wl_oracle *oracle;
	if (wl_oracle_create(&oracle, &cfg.params) < 0) {
		fprintf(stderr, "bgsnap bench: out of memory for the oracle\n");
		wl_destroy(w);
		return EXIT_FAIL;
	}

	struct result *all = calloc((size_t)o.repeat * (size_t)o.nmethods, sizeof(*all));
	if (!all) {
		fprintf(stderr, "bgsnap bench: out of memory\n");
		wl_oracle_destroy(oracle);
		wl_destroy(w);
		return EXIT_FAIL;
	}
	int rc = EXIT_OK;
	for (unsigned k = 0; k < o.repeat; k++)
		if (run_round(&o, w, oracle, all + (size_t)k * (size_t)o.nmethods, k + 1, raw.wp_us) != EXIT_OK)
			rc = EXIT_FAIL;
	if (o.repeat > 1)
		print_summary(&o, all);
	free(all);
	wl_oracle_destroy(oracle);
	wl_destroy(w);
	return rc;
}
