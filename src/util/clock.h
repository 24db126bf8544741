/*
 * clock.h - the library's clocks.  Durations are measured on
 * CLOCK_MONOTONIC (never goes back, unaffected by settimeofday); only the
 * snapshot's creation time is wall-clock.  clock_gettime is
 * async-signal-safe, so these may be called from the fault handlers.
 */
#ifndef BGSNAP_UTIL_CLOCK_H
#define BGSNAP_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ns_(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic nanoseconds, for durations and deadlines. */
static inline uint64_t now_ns(void)
{
	return clock_ns_(CLOCK_MONOTONIC);
}

/* Microseconds since the now_ns() value `t0`: the unit of every duration
 * in the statistics. */
static inline uint64_t us_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000;
}

/* Wall-clock nanoseconds since the epoch (a snapshot's creation time). */
static inline uint64_t realtime_ns(void)
{
	return clock_ns_(CLOCK_REALTIME);
}

#endif
