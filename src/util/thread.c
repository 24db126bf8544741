/* thread.c - thread_start (see thread.h for the invariant it keeps). */
#include "util/thread.h"

#include <signal.h>

int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg)
{
	/* The new thread inherits the mask in effect at pthread_create: block
	 * everything around the call, then give the caller its mask back. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!r)
		pthread_setname_np(*t, name);
	return -r;
}
