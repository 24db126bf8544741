/*
 * t_rate_limit.c - options.max_bytes_per_s, with two writer threads
 * rewriting the memory, for the tracking methods and fork (stop ignores
 * the limit: it writes in the pause):
 *  - paced: 32 MiB at 64 MiB/s cannot take the writer less than ~0.5 s
 *    (a lower bound: pacing only ever slows it, so this is no timing
 *    race), the rate achieved is not above the limit, and the file holds
 *    the pause-instant content;
 *  - cancelled: a run paced to 10 s ends with -ECANCELED well before
 *    that (< 2 s after the cancel), leaving the host unharmed;
 *  - stop: the limit is ignored and the file is exact.
 * tags: concurrency
 * timeout: 300
 */
#include "snaptest.h"

#define MEM (32u << 20)

/* The busy host of st_busy_start, with an engine limited to `rate`. */
static void busy_paced(struct st_busy *b, int method, uint64_t rate, bool want_copy)
{
	/* No zero pages: they cost no bytes, hence no pacing. */
	st_busy_start(b, method, MEM, 23, 0, 0, want_copy);
	bgsnap_destroy(b->e);
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	CHECK(o.max_bytes_per_s == 0, "default max_bytes_per_s is %llu, expected 0 (unlimited)",
	      (unsigned long long)o.max_bytes_per_s);
	o.method = method;
	o.max_bytes_per_s = rate;
	b->e = NULL;
	int r = bgsnap_create(&b->e, &o);
	if (r < 0)
		FAIL("bgsnap_create(max_bytes_per_s %llu): %s", (unsigned long long)rate, tu_errname(r));
	st_add_region(b->e, "mem", b->mem, MEM);
	st_set_hooks(b->e, &b->h);
}

static int case_paced(void *arg)
{
	int method = *(int *)arg;
	const uint64_t rate = 64u << 20;
	char path[600];
	snprintf(path, sizeof(path), "%s/paced.bgs", tu_tmpdir());
	struct st_busy b;
	busy_paced(&b, method, rate, true);
	st_snapshot_ok(b.e, path);
	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(b.e, &s, sizeof s), 0, "get_stats");
	printf("    writer_us %llu, bytes_written %llu, achieved %llu B/s (limit %llu)\n",
	       (unsigned long long)s.writer_us, (unsigned long long)s.bytes_written,
	       (unsigned long long)s.achieved_bytes_per_s, (unsigned long long)rate);
	CHECK(s.writer_us > 0 && s.achieved_bytes_per_s > 0, "writer_us %llu, achieved %llu: not reported",
	      (unsigned long long)s.writer_us, (unsigned long long)s.achieved_bytes_per_s);
	if (method != BGSNAP_METHOD_STOP) {
		/* 32 MiB at 64 MiB/s: ~500 ms due, whatever the machine. */
		CHECK(s.writer_us >= 400000, "the writer took %llu us for %llu bytes at %llu B/s: not paced "
		      "(~500000 us due)", (unsigned long long)s.writer_us, (unsigned long long)s.bytes_written,
		      (unsigned long long)rate);
		/* The index and trailer are not paced: a little over is fine. */
		CHECK(s.achieved_bytes_per_s <= rate + rate / 10, "achieved %llu B/s over the limit %llu",
		      (unsigned long long)s.achieved_bytes_per_s, (unsigned long long)rate);
	}
	CHECK_WRITERS_PROGRESS(&b.w);
	CHECK_FILE_REGION(path, "mem", b.copy, MEM);
	st_busy_stop(&b);
	return 0;
}

static int case_cancel(void *arg)
{
	int method = *(int *)arg;
	struct st_busy b;
	busy_paced(&b, method, MEM / 10, false);   /* 10 s of pacing */
	const char *dir = b.dir, *path = b.path;
	int r = bgsnap_start(b.e, path);
	CHECK_RC(r, 0, "bgsnap_start of a paced snapshot: %s", bgsnap_errmsg(b.e));
	tu_sleep_ms(500);
	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(b.e, &s, sizeof s), 0, "get_stats");
	CHECK(s.state == BGSNAP_STATE_RUNNING, "0.5 s into a run paced to 10 s: state %d, not RUNNING", s.state);
	uint64_t t0 = tu_now_ns();
	CHECK_RC(bgsnap_cancel(b.e), 0, "bgsnap_cancel");
	r = bgsnap_wait(b.e);
	uint64_t ms = (tu_now_ns() - t0) / 1000000;
	printf("    cancelled at pages_saved %llu/%u; wait returned %s after %llu ms\n",
	       (unsigned long long)s.pages_saved, MEM / TU_PAGE, tu_errname(r), (unsigned long long)ms);
	CHECK_RC(r, -ECANCELED, "a cancelled paced snapshot; message: %s", bgsnap_errmsg(b.e));
	CHECK(ms < 2000, "bgsnap_wait returned %llu ms after the cancel: the writer waited out its pacing",
	      (unsigned long long)ms);
	CHECK_HOST_UNHARMED(&b, -ECANCELED, dir, "a cancelled paced snapshot");
	st_busy_stop(&b);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	unsigned paced = ST_MASK_TRACKING | ST_MASK(BGSNAP_METHOD_FORK);
	st_for_each_method(&t, "paced", case_paced, paced | ST_MASK(BGSNAP_METHOD_STOP), 60);
	st_for_each_method(&t, "cancel-paced", case_cancel, paced, 60);
	tu_tally_exit(&t, "t_rate_limit");
}
