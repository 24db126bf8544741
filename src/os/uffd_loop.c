/* uffd_loop.c - the userfaultfd event loop (see uffd_loop.h). */
#include "os/uffd_loop.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/thread.h"

#define BATCH 64   /* messages per read(2) */

static void dispatch(struct uffd_loop *l, const struct uffd_msg *m, int token)
{
	const struct uffd_loop_ops *o = l->ops;
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		l->ptid = m->arg.pagefault.feat.ptid;
		o->fault(l->ctx, m->arg.pagefault.address, m->arg.pagefault.flags, token);
		break;
	case UFFD_EVENT_REMOVE:
		if (o->discard)
			o->discard(l->ctx, m->arg.remove.start, m->arg.remove.end, "MADV_DONTNEED/MADV_REMOVE", token);
		break;
	case UFFD_EVENT_UNMAP:
		if (o->discard)
			o->discard(l->ctx, m->arg.remove.start, m->arg.remove.end, "munmap", token);
		break;
	case UFFD_EVENT_REMAP:
		if (o->discard)
			o->discard(l->ctx, m->arg.remap.from, m->arg.remap.from + m->arg.remap.len, "mremap", token);
		break;
	default:
		break;
	}
}

static void *loop_main(void *arg)
{
	struct uffd_loop *l = arg;
	const struct uffd_loop_ops *o = l->ops;
	struct uffd_msg msgs[BATCH];
	struct pollfd pfd[2] = { { .fd = l->uffd, .events = POLLIN }, { .fd = l->stop_fd, .events = POLLIN } };
	uint64_t last_read = now_ns();
	int slept = 1;
	for (;;) {
		int token = o->batch_begin ? o->batch_begin(l->ctx) : 0;
		ssize_t n = read(l->uffd, msgs, sizeof(msgs));
		int read_errno = errno;
		size_t count = n > 0 ? (size_t)n / sizeof(msgs[0]) : 0;
		uint64_t t_read = now_ns();
		/* Messages that queued while the last batch was handled arrived
		 * somewhere in it; after a sleep, when poll returned. */
		l->arrival_ns = slept ? last_read : last_read + (t_read - last_read) / 2;
		last_read = t_read;
		slept = 0;
		for (size_t i = 0; i < count; i++)
			dispatch(l, &msgs[i], token);
		if (o->batch_end)
			o->batch_end(l->ctx, token, count);
		if (n > 0)
			continue;
		if (n < 0 && read_errno != EAGAIN && read_errno != EINTR) {
			o->failed(l->ctx, -read_errno, "reading the userfaultfd");
			return NULL;
		}
		int timeout = o->idle ? o->idle(l->ctx) : -1;
		int pr = poll(pfd, 2, timeout);
		last_read = now_ns();
		slept = 1;
		if (pr < 0 && errno != EINTR) {
			o->failed(l->ctx, -errno, "poll on the userfaultfd");
			return NULL;
		}
		if (pr > 0 && (pfd[1].revents & POLLIN))
			return NULL;
		/* Not readable yet an event: a descriptor in error would make
		 * this loop spin. */
		if (pr > 0 && (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))) {
			o->failed(l->ctx, -EIO, "the userfaultfd reported an error condition");
			return NULL;
		}
	}
}

int uffd_loop_init(struct uffd_loop *l, int uffd, const struct uffd_loop_ops *ops, void *ctx)
{
	memset(l, 0, sizeof(*l));
	l->uffd = uffd;
	l->ops = ops;
	l->ctx = ctx;
	l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return l->stop_fd < 0 ? -errno : 0;
}

int uffd_loop_start(struct uffd_loop *l, const char *name)
{
	int r = thread_start(&l->thread, name, loop_main, l);
	if (!r)
		l->running = 1;
	return r;
}

void uffd_loop_stop(struct uffd_loop *l)
{
	if (!l->running)
		return;
	uint64_t one = 1;
	/* Fails only when the counter would overflow: it is set already. */
	while (write(l->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(l->thread, NULL);
	l->running = 0;
}

void uffd_loop_destroy(struct uffd_loop *l)
{
	uffd_loop_stop(l);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	l->stop_fd = -1;
}
