/*
 * pace.c - "sleep until bytes/rate": see pace.h.
 */
#include "engine/pace.h"
#include "engine/engine.h"
#include "util/clock.h"

#include <errno.h>
#include <time.h>

#define PACE_STEP_NS 10000000ull    /* 10 ms: how late a cancel may be seen */
#define PACE_SLACK_NS 500000000ull  /* 500 ms: how far behind before restarting */
/* Less ahead than this: no sleep yet.  A sleep per 256 KiB batch is a
 * context switch per batch, which a loaded machine makes late. */
#define PACE_MIN_AHEAD_NS 2000000ull

void pace_init(struct pace *p, uint64_t rate, uint64_t bytes_now)
{
	p->rate = rate;
	p->t0_ns = now_ns();
	p->base = bytes_now;
}

int pace_wait(struct pace *p, struct bgsnap_engine *e, uint64_t bytes_now)
{
	if (!p->rate || bytes_now <= p->base)
		return 0;
	/* In floating point: bytes * 1e9 overflows 64 bits from 18 GB on. */
	double due_s = (double)(bytes_now - p->base) / (double)p->rate;
	uint64_t due = p->t0_ns + (uint64_t)(due_s * 1e9);
	uint64_t first = now_ns();
	if (first < due && due - first < PACE_MIN_AHEAD_NS)
		return 0;
	for (;;) {
		if (e && engine_cancelled(e))
			return -ECANCELED;
		uint64_t now = now_ns();
		if (now >= due) {
			if (now - due > PACE_SLACK_NS)
				pace_init(p, p->rate, bytes_now);
			return 0;
		}
		uint64_t step = due - now < PACE_STEP_NS ? due - now : PACE_STEP_NS;
		struct timespec ts = { (time_t)(step / 1000000000u), (long)(step % 1000000000u) };
		/* EINTR (a signal to this thread) only ends a step early. */
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
	}
}
