/*
 * sampler.h - the writers' progress sampled by a thread of its own every
 * few milliseconds, so that the series goes on while the bench's main
 * thread is inside bgsnap_start (a stop method writes everything there) or
 * bgsnap_wait; the host-loss measure (cli/hostloss.h) is computed on it.
 */
#ifndef BGSNAP_BENCH_SAMPLER_H
#define BGSNAP_BENCH_SAMPLER_H

#include <pthread.h>
#include <stdbool.h>

#include "cli/hostloss.h"
#include "workload.h"

struct sampler {
	wl *w;
	pthread_t tid;
	pthread_mutex_t lock;
	bool stop;               /* under lock                               */
	struct hl_point *p;      /* under lock                               */
	size_t n, cap;
	bool oom;                /* a point was lost: the series is coarser  */
};

/* Starts sampling w; 0 or -errno. */
int sampler_start(struct sampler *s, wl *w);
/* Calls fn on the points so far, the sampler held still. */
void sampler_with(struct sampler *s, void (*fn)(const struct hl_point *p, size_t n, void *ctx), void *ctx);
/* Stops the thread; the points stay until sampler_free. */
void sampler_stop(struct sampler *s);
void sampler_free(struct sampler *s);

#endif
