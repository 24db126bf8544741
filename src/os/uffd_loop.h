/*
 * uffd_loop.h - the one userfaultfd event loop: a thread that reads the
 * descriptor's messages in batches and hands each to its owner, until told
 * to stop.  Used by write tracking (method_uffd.c) and by lazy restore
 * (restore_lazy.c); they differ only in what they do with a message.
 *
 * The descriptor is non-blocking (uffd_open): the loop reads until EAGAIN,
 * then sleeps in poll(2) on it and on an eventfd that uffd_loop_stop()
 * signals.  A stop request is seen at the next sleep, so everything the
 * kernel queued before it is read first.  A read or poll failure, or an
 * error condition on the descriptor, is reported once through `failed`,
 * and the loop ends.
 */
#ifndef BGSNAP_UFFD_LOOP_H
#define BGSNAP_UFFD_LOOP_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct uffd_loop_ops {
	/* Before each read (optional): returns a token passed to the
	 * dispatch calls and to batch_end.  The tracking method takes a
	 * pre-phase ticket here, which must cover reading the batch. */
	int (*batch_begin)(void *ctx);
	/* UFFD_EVENT_PAGEFAULT: the address and flags of the fault. */
	void (*fault)(void *ctx, uint64_t addr, uint64_t flags, int token);
	/* UFFD_EVENT_REMOVE / UNMAP / REMAP (optional): [lo, hi) left the
	 * registered range; `what` names the call for messages. */
	void (*discard)(void *ctx, uint64_t lo, uint64_t hi, const char *what, int token);
	/* After each read and its dispatch (optional); n messages, maybe 0. */
	void (*batch_end)(void *ctx, int token, size_t n);
	/* Nothing more to read (optional): returns the poll timeout in ms,
	 * -1 to sleep until a message or the stop request. */
	int (*idle)(void *ctx);
	/* The loop ends on an error: code is -errno, `what` the failed call. */
	void (*failed)(void *ctx, int code, const char *what);
};

struct uffd_loop {
	int uffd;                     /* not owned */
	int stop_fd;                  /* eventfd, owned */
	const struct uffd_loop_ops *ops;
	void *ctx;
	pthread_t thread;
	int running;
	/* For the `fault` callback, read only from it: when the message's
	 * batch is estimated to have arrived (CLOCK_MONOTONIC ns: the poll
	 * that saw it, or halfway through the batch before when the messages
	 * queued meanwhile), and the faulting thread's id (0 without
	 * UFFD_FEATURE_THREAD_ID). */
	uint64_t arrival_ns;
	uint32_t ptid;
};

/* Prepares a loop on `uffd` (creates the stop eventfd).  0 or -errno. */
int uffd_loop_init(struct uffd_loop *l, int uffd, const struct uffd_loop_ops *ops, void *ctx);
/* Starts the loop's thread (util/thread.h: signals blocked, `name`). */
int uffd_loop_start(struct uffd_loop *l, const char *name);
/* Asks the thread to stop and joins it; nothing if it is not running. */
void uffd_loop_stop(struct uffd_loop *l);
/* Stops it if needed and closes the eventfd.  Safe on a zeroed or
 * never-initialised loop whose stop_fd is -1. */
void uffd_loop_destroy(struct uffd_loop *l);

#endif
