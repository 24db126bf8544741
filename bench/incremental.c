/*
 * incremental.c - `bgsnap bench --incremental N --dirty-fraction F` and
 * `bgsnap bench --reset-loop N --dirty-pages K` (bench.h): chained
 * snapshots of the workload's region.
 *
 * --incremental: one engine with options.chain takes a full snapshot,
 * then N incremental ones.  Before each, the writers run until they have
 * made F x pages steps (distinct pages: at most that many), then stay
 * parked through the snapshot, so that each snapshot holds what one
 * interval wrote and nothing the writers do while it runs.  The chain's
 * files go to one directory (the reader finds parents there); the last
 * image of the chain is verified against the oracle.  One line per
 * snapshot, JSON with --json; besides the fields --help lists, where the
 * time went: prescan_us and prescan_pages (the collection before the
 * pause), start_ms (bgsnap_start: up to the writer's launch, the pause
 * included), writer_us, unprotect_us, unprotect_calls, commit_us.
 *
 * --reset-loop: a full snapshot, then N rounds of: the bench writes K
 * pages (spread over the region), bgsnap_reset puts them back; reset_us
 * over the rounds, against a memcpy of the same K pages from a buffer
 * (what a reset cannot beat) timed the same way; the memory is compared
 * with its pause-instant copy at the end.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cli/cli.h"
#include "cli/clock.h"
#include "cli/json.h"
#include "commands.h"

struct chain_hooks {
	wl *w;
	uint64_t steps[WL_MAX_THREADS];
};

/* The writers are parked already: the pause records their step counts. */
static int ch_pause(void *ctx)
{
	struct chain_hooks *h = ctx;
	memcpy(h->steps, wl_paused_steps(h->w), sizeof(h->steps));
	return 0;
}

static int ch_save(bgsnap_state *st, void *ctx)
{
	struct chain_hooks *h = ctx;
	return wl_blob_add(st, wl_get_params(h->w), h->steps);
}

static bgsnap_engine *chain_engine(const struct bench_opts *o, struct chain_hooks *h)
{
	struct bgsnap_options opts;
	bgsnap_options_init(&opts);
	opts.method = o->method_given ? o->methods[0] : BGSNAP_METHOD_AUTO;
	opts.copy_buffer_bytes = o->buffer;
	opts.wp_threads = o->wp_threads;
	opts.direct_io = !o->buffered_io;
	opts.compress = o->compress;
	opts.compress_level = o->compress_level;
	opts.chain = 1;
	opts.page_aligned = o->page_aligned;
	bgsnap_engine *e = NULL;
	int r = bgsnap_create(&e, &opts);
	if (r < 0) {
		cli_error("bgsnap_create: %s", strerror(-r));
		return NULL;
	}
	struct bgsnap_hooks hooks = { .pause = ch_pause, .save_state = ch_save, .ctx = h };
	/* The pause hook here does not stop the writers: a finishing pause
	 * would be none, and would overwrite the recorded steps. */
	r = bgsnap_set_param(e, BGSNAP_PARAM_FINISH_PAUSED, 0);
	if (r == 0)
		r = bgsnap_add_region(e, "mem", wl_mem(h->w), wl_mem_bytes(h->w));
	if (r == 0)
		r = bgsnap_set_hooks(e, &hooks);
	if (r < 0) {
		cli_error("%s", bgsnap_errmsg(e));
		bgsnap_destroy(e);
		return NULL;
	}
	return e;
}

/* The directory of the chain: --out's, or a new one under $TMPDIR. */
static int chain_dir(const struct bench_opts *o, char *dir, size_t len, char *prefix, size_t plen)
{
	if (o->out) {
		snprintf(prefix, plen, "%s", o->out);
		dir[0] = '\0';
		return 0;
	}
	const char *t = getenv("TMPDIR");
	snprintf(dir, len, "%s/bgsnap-bench-chain.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(dir)) {
		cli_error("mkdtemp %s: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(prefix, plen, "%s/s", dir);
	return 0;
}

/* Lets the writers make `steps` steps in all, then parks them. */
static int write_interval(wl *w, uint64_t steps)
{
	uint64_t target = wl_total_steps(w) + steps;
	wl_resume(w, false);
	double t0 = mono_s();
	while (wl_total_steps(w) < target) {
		if (mono_s() - t0 > 60) {
			wl_pause(w);
			cli_error("the writers made too few steps in 60 s");
			return -ETIMEDOUT;
		}
		sched_yield();
	}
	wl_pause(w);
	return 0;
}

struct snap_line {
	unsigned index;
	char path[4200];
	struct bgsnap_stats st;
	uint64_t file_bytes;
	double total_ms;
	double start_ms;         /* bgsnap_start alone: up to the writer's launch */
	int verified;            /* -1: not checked (only the last is) */
};

static void report_line(const struct bench_opts *o, const struct snap_line *s, const char *parent)
{
	if (!o->json) {
		printf("%-3u %-11s depth %-3u dirty %-9llu saved %-9llu bytes %-11llu pause %7.3f ms scan %7.3f ms (pre %.3f ms %llu) "
		       "total %8.1f ms (start %.1f writer %.1f unprot %.1f/%llu commit %.1f)%s\n", s->index, s->st.incremental ? "incremental" : "full", s->st.depth,
		       (unsigned long long)s->st.dirty_pages, (unsigned long long)s->st.pages_saved,
		       (unsigned long long)s->file_bytes, s->st.pause_us / 1e3, s->st.scan_us / 1e3,
		       s->st.prescan_us / 1e3, (unsigned long long)s->st.prescan_pages, s->total_ms,
		       s->start_ms, s->st.writer_us / 1e3, s->st.unprotect_us / 1e3,
		       (unsigned long long)s->st.unprotect_calls, s->st.commit_us / 1e3, s->verified < 0 ? "" : s->verified ? "  verified" : "  NOT VERIFIED");
		return;
	}
	struct json j;
	json_begin(&j, stdout);
	json_open(&j, NULL);
	json_u64(&j, "index", s->index);
	json_string(&j, "method", bgsnap_method_name(s->st.method));
	json_string(&j, "tracking", s->st.tracking == BGSNAP_TRACKING_UFFD_ASYNC  ? "uffd-async"
	                          : s->st.tracking == BGSNAP_TRACKING_UFFD_SYNC ? "uffd-sync"
	                                                                         : "none");
	json_u64(&j, "mem_bytes", o->mem);
	json_u64(&j, "threads", o->threads);
	json_string(&j, "pattern", wl_pattern_name(o->pattern));
	json_bool(&j, "incremental", s->st.incremental);
	json_u64(&j, "depth", s->st.depth);
	if (parent)
		json_string(&j, "parent", parent);
	else
		json_raw(&j, "parent", "null");
	json_u64(&j, "dirty_pages", s->st.dirty_pages);
	json_u64(&j, "pages_saved", s->st.pages_saved);
	json_u64(&j, "bytes_written", s->st.bytes_written);
	json_u64(&j, "file_bytes", s->file_bytes);
	json_u64(&j, "pause_us", s->st.pause_us);
	json_u64(&j, "scan_us", s->st.scan_us);
	json_u64(&j, "prescan_us", s->st.prescan_us);
	json_u64(&j, "prescan_pages", s->st.prescan_pages);
	json_u64(&j, "wp_us", s->st.wp_us);
	json_double(&j, "total_ms", 3, s->total_ms);
	json_double(&j, "start_ms", 3, s->start_ms);
	json_u64(&j, "writer_us", s->st.writer_us);
	json_u64(&j, "unprotect_us", s->st.unprotect_us);
	json_u64(&j, "unprotect_calls", s->st.unprotect_calls);
	json_u64(&j, "commit_us", s->st.commit_us);
	if (s->verified < 0)
		json_raw(&j, "verified", "null");
	else
		json_bool(&j, "verified", s->verified);
	json_close(&j);
	json_end_line(&j);
}

static int take(bgsnap_engine *e, struct snap_line *s)
{
	double t0 = mono_s();
	int r = bgsnap_start(e, s->path);
	s->start_ms = (mono_s() - t0) * 1e3;
	if (r == 0)
		r = bgsnap_wait(e);
	s->total_ms = (mono_s() - t0) * 1e3;
	bgsnap_get_stats(e, &s->st, sizeof(s->st));
	if (r < 0) {
		cli_error("snapshot %u (%s): %s", s->index, s->path, bgsnap_errmsg(e));
		return r;
	}
	struct stat sb;
	s->file_bytes = stat(s->path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	return 0;
}

static void remove_chain(const struct bench_opts *o, const char *dir, const char *prefix, unsigned n)
{
	if (o->out)
		return;
	for (unsigned i = 0; i < n; i++) {
		char p[4200];
		snprintf(p, sizeof(p), "%s%02u.bgs", prefix, i);
		unlink(p);
	}
	rmdir(dir);
}

int bench_incremental(const struct bench_opts *o, wl *w, const struct wl_params *params)
{
	char dir[4000], prefix[4096];
	if (chain_dir(o, dir, sizeof(dir), prefix, sizeof(prefix)) < 0)
		return EXIT_FAIL;
	wl_oracle *oracle;
	if (wl_oracle_create(&oracle, params) < 0) {
		cli_error("out of memory for the oracle");
		return EXIT_FAIL;
	}
	struct chain_hooks h = { .w = w };
	bgsnap_engine *e = chain_engine(o, &h);
	char err[256];
	if (!e || wl_start(w, err, sizeof(err)) < 0) {
		if (e)
			cli_error("%s", err);
		bgsnap_destroy(e);
		wl_oracle_destroy(oracle);
		return EXIT_FAIL;
	}
	wl_pause(w);
	uint64_t interval = (uint64_t)(o->dirty_fraction * (double)params->npages + 0.5);
	int rc = EXIT_OK;
	unsigned taken = 0;
	struct snap_line s;
	char parent[4200] = "";
	for (unsigned i = 0; i <= o->incremental && rc == EXIT_OK; i++) {
		memset(&s, 0, sizeof(s));
		s.index = i;
		s.verified = -1;
		snprintf(s.path, sizeof(s.path), "%s%02u.bgs", prefix, i);
		if (i > 0 && write_interval(w, interval) < 0) {
			rc = EXIT_FAIL;
			break;
		}
		if (take(e, &s) < 0) {
			rc = EXIT_FAIL;
			break;
		}
		taken = i + 1;
		if (i == o->incremental) {
			char msg[512] = "";
			s.verified = bench_verify_image(bgsnap_method_name(s.st.method), s.path, w, oracle, h.steps, msg,
			                                sizeof(msg));
			if (!s.verified) {
				cli_error("the chain's last image: %s", msg);
				rc = EXIT_FAIL;
			}
		}
		report_line(o, &s, i && s.st.incremental ? parent : NULL);
		snprintf(parent, sizeof(parent), "%s", s.path);
		fflush(stdout);
	}
	wl_stop(w);
	bgsnap_destroy(e);
	wl_oracle_destroy(oracle);
	remove_chain(o, dir, prefix, taken);
	return rc;
}
