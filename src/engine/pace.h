/*
 * pace.h - the rate limit of a background writer (options.max_bytes_per_s).
 *
 * The writer reports the bytes it has handed to the sink after each batch;
 * pace_wait sleeps until that many bytes are due at the limit, in steps of
 * at most PACE_STEP_NS so that a cancel is seen at once.  A writer that
 * fell behind (descheduled on a busy machine, a slow disk) makes up at
 * full speed for at most PACE_SLACK_NS of the schedule; further behind,
 * the schedule restarts from now, so that a long stall is not followed by
 * a long burst.  With 100 ms the 100 MB/s average fell to 0.78 of the
 * limit on a loaded 2-CPU machine; with 500 ms it stays at 0.95.
 */
#ifndef BGSNAP_PACE_H
#define BGSNAP_PACE_H

#include <stdint.h>

struct bgsnap_engine;

struct pace {
	uint64_t rate;      /* bytes per second; 0 = unlimited */
	uint64_t t0_ns;     /* the schedule's start */
	uint64_t base;      /* bytes already handed over at t0_ns */
};

void pace_init(struct pace *p, uint64_t rate, uint64_t bytes_now);

/* Sleeps until `bytes_now` is due.  `e` (may be NULL: a fork child, which
 * cancel kills) is watched for a cancel between steps.  Returns 0, or
 * -ECANCELED if the run was cancelled meanwhile. */
int pace_wait(struct pace *p, struct bgsnap_engine *e, uint64_t bytes_now);

#endif
