/*
 * thread.h - how the library starts a thread.
 *
 * Invariant: every thread bgsnap creates has every signal blocked and a name
 * beginning "bgsnap-".  The host's signals (SIGINT, SIGTERM, SIGPIPE from a
 * closed pipe sink, timers) then always go to the host's own threads, and
 * top -H or perf tell the library's threads from the host's.  Synchronous
 * faults still reach a blocked thread (the kernel forces them), so this
 * hides nothing that would crash.
 */
#ifndef BGSNAP_UTIL_THREAD_H
#define BGSNAP_UTIL_THREAD_H

#include <pthread.h>

/* Starts fn(arg) as a thread named `name` (at most 15 characters) with
 * every signal blocked.  Returns 0 or -errno. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

#endif
