/*
 * t_fault_cancel.c - bgsnap_cancel at seeded random moments, for every
 * method, with writer threads running: from before the pause to after the
 * commit.  Each snapshot ends either committed (wait returns 0, the file
 * holds the pause-instant content) or cancelled (-ECANCELED, no file at
 * all); in both cases the memory is writable, the writers progress and no
 * child is left; the same engine is reused for every round.
 * Set BGSNAP_FAULT_SEED to replay a run.
 * tags: concurrency
 * timeout: 600
 */
#include "snaptest.h"

#define MEM (8u << 20)
#define ROUNDS 8

static uint64_t seed;

struct canceller {
	bgsnap_engine *e;
	unsigned delay_us;
	atomic_bool go;
	struct bgsnap_stats at;  /* just before the cancel */
};

static void *cancel_thread(void *p)
{
	struct canceller *c = p;
	while (!atomic_load(&c->go))
		;
	struct timespec ts = { c->delay_us / 1000000, (long)(c->delay_us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
	bgsnap_get_stats(c->e, &c->at, sizeof c->at);
	bgsnap_cancel(c->e);
	return NULL;
}

static int run(void *arg)
{
	int method = *(int *)arg;
	struct st_busy b;
	st_busy_start(&b, method, MEM, 81, 4, 8 * TU_PAGE, true);
	const char *dir = b.dir, *path = b.path;
	bgsnap_engine *e = b.e;
	uint8_t *m = b.mem, *copy = b.copy;

	/* How long does an uncancelled snapshot take here?  Cancel points are
	 * spread over 0..1.2x that. */
	uint64_t full_us = 0;
	for (int warm = 0; warm < 2; warm++) {
		/* The second run is the one measured: the first pays for
		 * first touches. */
		uint64_t t0 = tu_now_ns();
		st_snapshot_ok(e, path);
		full_us = (tu_now_ns() - t0) / 1000 + 1;
		CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
	}

	int committed = 0, cancelled = 0;
	for (int round = 0; round < ROUNDS; round++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		struct canceller c = { .e = e, .delay_us = (unsigned)((seed >> 33) % (full_us * 6 / 5)) };
		pthread_t ct;
		CHECK(pthread_create(&ct, NULL, cancel_thread, &c) == 0, "pthread_create");
		tu_phase("snapshot with a cancel at a random moment");
		atomic_store(&c.go, true);
		int r = bgsnap_start(e, path);
		if (r == 0)
			r = bgsnap_wait(e);
		pthread_join(ct, NULL);
		printf("    round %d: cancel at %u us (state %d, %llu/%llu pages saved): %s\n", round, c.delay_us,
		       c.at.state, (unsigned long long)c.at.pages_saved, (unsigned long long)c.at.pages_total,
		       tu_errname(r));
		if (r == 0 && c.at.state == BGSNAP_STATE_RUNNING && c.at.pages_saved < c.at.pages_total)
			FAIL("the cancel was ignored: requested while RUNNING with %llu of %llu pages saved, but the "
			     "snapshot committed", (unsigned long long)c.at.pages_saved,
			     (unsigned long long)c.at.pages_total);
		if (r == 0) {
			committed++;
			CHECK_FILE_REGION(path, "mem", copy, MEM);
			CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
		} else {
			CHECK_RC(r, -ECANCELED, "cancel %u us into a %llu us snapshot: %s", c.delay_us,
			         (unsigned long long)full_us, bgsnap_errmsg(e));
			cancelled++;
			CHECK_FAILED_STATS(e, -ECANCELED);
		}
		CHECK_DIR_COUNT(dir, 0, "after round %d (cancel at %u us, result %s)", round, c.delay_us, tu_errname(r));
		CHECK_WRITERS_PROGRESS(&b.w);
		CHECK_WRITABLE("region after a randomly cancelled snapshot", m, MEM);
		CHECK(tu_no_children(), "a child process was left after round %d", round);
	}
	printf("    full snapshot %llu us; %d rounds committed, %d cancelled\n", (unsigned long long)full_us,
	       committed, cancelled);
	st_busy_stop(&b);
	return 0;
}

int main(void)
{
	seed = tu_seed();
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "random-cancel", run, ~0u, 60);
	tu_tally_exit(&t, "t_fault_cancel");
}
