/* sampler.c - the writers' progress series (sampler.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/clock.h"
#include "sampler.h"

#define SAMPLE_US 5000

static void add(struct sampler *s, double t, double n)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		struct hl_point *np = realloc(s->p, nc * sizeof(*np));
		if (!np) {
			s->oom = true;
			return;
		}
		s->p = np;
		s->cap = nc;
	}
	s->p[s->n++] = (struct hl_point){ t, n };
}

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->lock);
		bool stop = s->stop;
		add(s, mono_s(), (double)wl_total_steps(s->w));
		pthread_mutex_unlock(&s->lock);
		if (stop)
			return NULL;
		struct timespec ts = { 0, SAMPLE_US * 1000L };
		nanosleep(&ts, NULL);
	}
}

int sampler_start(struct sampler *s, wl *w)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	pthread_mutex_init(&s->lock, NULL);
	/* The first point before anything can pause the writers: the thread
	 * may not run before the pause does. */
	add(s, mono_s(), (double)wl_total_steps(w));
	int r = pthread_create(&s->tid, NULL, sampler_main, s);
	if (r) {
		pthread_mutex_destroy(&s->lock);
		return -r;
	}
	return 0;
}

void sampler_with(struct sampler *s, void (*fn)(const struct hl_point *p, size_t n, void *ctx), void *ctx)
{
	pthread_mutex_lock(&s->lock);
	fn(s->p, s->n, ctx);
	pthread_mutex_unlock(&s->lock);
}

void sampler_stop(struct sampler *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->tid, NULL);
}

void sampler_free(struct sampler *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->p);
	s->p = NULL;
}
