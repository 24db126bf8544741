/*
 * t_err_cancel.c - bgsnap_cancel in the middle of a snapshot, with writer
 * threads running, for every method: wait returns -ECANCELED, the stats say
 * FAILED/-ECANCELED, no file (not even a temporary one) is left, the memory
 * is writable, the writers keep going, no child process or engine thread
 * remains after destroy, no descriptor leaks, and the same engine then takes
 * a snapshot that commits and holds the pause-instant content.
 * Two cases per method: cancel as soon as the snapshot runs, and once a
 * quarter of the pages are saved.
 * tags: concurrency
 * timeout: 600
 */
#include "snaptest.h"

#define MEM (64u << 20)

struct canceller {
	bgsnap_engine *e;
	struct st_host *h;
	uint64_t at_pages;          /* cancel once pages_saved >= this         */
	atomic_bool go, done;
	struct bgsnap_stats at;     /* stats when cancel was called            */
	int rc;
};

static void *cancel_thread(void *p)
{
	struct canceller *c = p;
	while (!atomic_load(&c->go))
		tu_sleep_ms(0);
	/* For every method, the snapshot is running once the host is paused
	 * (stop writes everything before resume). */
	uint64_t t0 = tu_now_ns();
	for (;;) {
		bgsnap_get_stats(c->e, &c->at, sizeof c->at);
		if (atomic_load(&c->h->pause_calls) > 0 &&
		    (c->at.pages_saved >= c->at_pages || tu_now_ns() - t0 > 2000000000ull))
			break;
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	c->rc = bgsnap_cancel(c->e);
	atomic_store(&c->done, true);
	return NULL;
}

static int run(int method, int fraction_quarters)
{
	const char *dir = tu_tmpdir();
	char path[600], path2[600];
	snprintf(path, sizeof(path), "%s/cancelled.bgs", dir);
	snprintf(path2, sizeof(path2), "%s/after.bgs", dir);
	int fds0 = tu_count_fds(), threads0 = tu_count_threads();

	struct st_busy b;
	st_busy_start(&b, method, MEM, 11, 5, 1u << 20, false);
	struct canceller c = { .e = b.e, .h = &b.h, .at_pages = (MEM / TU_PAGE) * (uint64_t)fraction_quarters / 4 };
	pthread_t ct;
	CHECK(pthread_create(&ct, NULL, cancel_thread, &c) == 0, "pthread_create");
	atomic_store(&c.go, true);
	tu_phase("bgsnap_start of the snapshot to cancel");
	int r = bgsnap_start(b.e, path);
	tu_phase("bgsnap_wait of the cancelled snapshot");
	if (r == 0)
		r = bgsnap_wait(b.e);
	pthread_join(ct, NULL);
	printf("    cancel at pages_saved=%llu/%llu state=%d returned %s; snapshot returned %s\n",
	       (unsigned long long)c.at.pages_saved, (unsigned long long)(MEM / TU_PAGE), c.at.state,
	       tu_errname(c.rc), tu_errname(r));
	if (r == 0 && c.at.state == BGSNAP_STATE_RUNNING && c.at.pages_saved < MEM / TU_PAGE)
		FAIL("cancel was ignored: requested while RUNNING with %llu of %llu pages saved, "
		     "but the snapshot committed", (unsigned long long)c.at.pages_saved,
		     (unsigned long long)(MEM / TU_PAGE));
	if (r == 0)
		SKIP("the snapshot committed before the cancel arrived (state %d): inconclusive", c.at.state);
	CHECK_RC(r, -ECANCELED, "a cancelled snapshot; message: %s", bgsnap_errmsg(b.e));
	CHECK_HOST_UNHARMED(&b, -ECANCELED, dir, "a cancelled snapshot");

	/* The engine is reusable and the next snapshot is exact. */
	uint8_t *copy = tu_map_anon(MEM);
	b.h.copy = copy;
	st_snapshot_ok(b.e, path2);
	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(b.e, &s, sizeof s), 0, "get_stats");
	CHECK(s.state == BGSNAP_STATE_DONE && s.error == 0 && s.pages_saved == MEM / TU_PAGE,
	      "after the good snapshot: state %d error %s pages_saved %llu", s.state, tu_errname(s.error),
	      (unsigned long long)s.pages_saved);
	CHECK_DIR_COUNT(dir, 1, "only the committed snapshot should remain");
	CHECK_WRITERS_PROGRESS(&b.w);
	CHECK_FILE_REGION(path2, "mem", copy, MEM);

	st_busy_stop(&b);
	munmap(copy, MEM);
	CHECK(tu_count_threads() == threads0, "%d threads after destroy, %d before create: engine threads left",
	      tu_count_threads(), threads0);
	CHECK(tu_count_fds() == fds0, "%d descriptors open after destroy, %d before: a descriptor leaked",
	      tu_count_fds(), fds0);
	CHECK(tu_no_children(), "a child process was left");
	return 0;
}

static int case_early(void *arg) { return run(*(int *)arg, 0); }
static int case_quarter(void *arg) { return run(*(int *)arg, 1); }

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "cancel-early", case_early, ~0u, 20);
	st_for_each_method(&t, "cancel-after-quarter", case_quarter, ~0u, 20);
	tu_tally_exit(&t, "t_err_cancel");
}
