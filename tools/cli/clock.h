/*
 * clock.h - the monotonic clock and a sleep that outlasts signals, for the
 * tools' timings (inline: the bench's writers read the clock around single
 * stores).
 */
#ifndef BGSNAP_TOOLS_CLOCK_H
#define BGSNAP_TOOLS_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double mono_us(void)
{
	return mono_s() * 1e6;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

#endif
