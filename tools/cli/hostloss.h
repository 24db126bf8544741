/*
 * hostloss.h - the host's work lost to a snapshot, one definition for every
 * tool (the bench's writers, the VM's guest).
 *
 * From a series of (time, cumulative progress) points: the windows of
 * HOSTLOSS_WINDOW_S seconds starting at the pause instant, each contributing
 * (1 - rate/rate_before) x window, where rate is the progress made in the
 * window (linearly interpolated between points) over its length.  The sum
 * stops before the first of two consecutive windows that both start at or
 * after the snapshot's end and run within HOSTLOSS_TOLERANCE of rate_before
 * (the host is back), or at `limit` (the end plus HOSTLOSS_TAIL_S, or the
 * last point, whichever comes first).  Nothing is clamped: a window faster
 * than before counts negatively, so noise averages out instead of adding
 * up.  For a stop-the-world save the same sum is the pause.
 */
#ifndef BGSNAP_TOOLS_HOSTLOSS_H
#define BGSNAP_TOOLS_HOSTLOSS_H

#include <stdbool.h>
#include <stddef.h>

#define HOSTLOSS_WINDOW_S 0.05
#define HOSTLOSS_TOLERANCE 0.05
#define HOSTLOSS_TAIL_S 5.0
#define HOSTLOSS_AFTER_S 1.0     /* window of the rate after the end      */

struct hl_point {
	double t;                /* seconds, any monotonic origin            */
	double n;                /* cumulative progress (steps, units)       */
};

struct hostloss {
	double lost_s;           /* the sum, seconds of host work            */
	double until;            /* where the sum stopped                    */
	bool recovered;          /* stopped because the host was back        */
	unsigned windows;        /* windows summed                           */
};

/* Progress at time t, interpolated; clamps outside the points. */
double hostloss_progress_at(const struct hl_point *p, size_t n, double t);

/* Rate over [a, b]; -1 when the window is shorter than a millisecond or
 * lies outside the points. */
double hostloss_rate(const struct hl_point *p, size_t n, double a, double b);

/*
 * Computes the loss from `pause` (the host stopped) for a snapshot that
 * ended at `end`; p sorted by t.  -1 (and *out zeroed) when rate_before is
 * not positive or the points do not cover the pause; else 0.
 */
int hostloss_compute(const struct hl_point *p, size_t n, double rate_before, double pause, double end,
                     struct hostloss *out);

#endif
