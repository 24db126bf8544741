/*
 * sink_aio.c - the thread that makes a path sink's O_DIRECT writes, so that
 * the snapshot writer fills the next stage while the device takes the last
 * one (see sink.h for why the sink writes direct at all).
 *
 * Stage n % SINK_STAGES carries job n.  The writer submits job n once the
 * stage is full and may fill stage n + 1 only once job n + 1 - SINK_STAGES
 * is written: `submitted - completed < SINK_STAGES`.  A mutex and two
 * condition variables suffice: one handoff per MiB.
 */
#include "sink/sink.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/thread.h"

struct sink_aio {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t more;          /* a job was submitted, or stop   */
	pthread_cond_t less;          /* a job was completed            */
	uint64_t submitted, completed;
	int stop;
	int err;                      /* the first failure's -errno, or 0 */
	uint64_t err_offset;
	struct {
		const uint8_t *buf;
		size_t len;
		uint64_t off;
	} job[SINK_STAGES];
	int fd, dfd;
	struct sink_meter meter;      /* the writes' speed, under mu */
};

/* Writes [buf, buf+len) at file offset `off`.  When the buffer mirrors the
 * file's alignment (buf and off equal modulo SINK_ALIGN), the aligned middle
 * goes direct and only the ends through the page cache; else, and after a
 * short direct write or a file system that turns O_DIRECT down at write
 * time, everything does. */
int sink_pwrite_all(int fd, int dfd, const uint8_t *buf, size_t len, uint64_t off, uint64_t *failed_at)
{
	if ((uintptr_t)buf % SINK_ALIGN != off % SINK_ALIGN)
		dfd = -1;
	while (len > 0) {
		size_t chunk = len;
		int direct = 0;
		if (dfd >= 0 && off % SINK_ALIGN) {
			chunk = SINK_ALIGN - off % SINK_ALIGN;
			chunk = chunk < len ? chunk : len;
		} else if (dfd >= 0 && len >= SINK_ALIGN) {
			chunk = len - len % SINK_ALIGN;
			direct = 1;
		}
		ssize_t w = pwrite(direct ? dfd : fd, buf, chunk, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && direct) {
			dfd = -1;
			continue;
		}
		if (w <= 0) {
			*failed_at = off;
			return w < 0 ? -errno : -EIO;
		}
		if (direct && (size_t)w % SINK_ALIGN)
			dfd = -1;
		buf += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Jobs [first, first + n) as one pwritev when they are contiguous in the
 * file: the device sees one large write instead of n of a stage each
 * (direct writes are synchronous, so their size is the queue depth). */
static int write_jobs(struct sink_aio *a, uint64_t first, unsigned n, uint64_t *failed_at)
{
	struct iovec iov[SINK_STAGES];
	unsigned k0 = (unsigned)(first % SINK_STAGES), m = 0;
	uint64_t off = a->job[k0].off, end = off;
	size_t total = 0;
	while (m < n) {
		unsigned k = (unsigned)((first + m) % SINK_STAGES);
		if (a->job[k].off != end)
			break;
		iov[m] = (struct iovec){ .iov_base = (void *)a->job[k].buf, .iov_len = a->job[k].len };
		end += a->job[k].len;
		total += a->job[k].len;
		m++;
	}
	if (m > 1 && a->dfd >= 0) {
		ssize_t w;
		do
			w = pwritev(a->dfd, iov, (int)m, (off_t)off);
		while (w < 0 && errno == EINTR);
		if (w == (ssize_t)total)
			return (int)m;
	}
	/* One at a time, with the fallbacks of sink_pwrite_all (rewriting
	 * what a short pwritev wrote is harmless: same bytes, same place). */
	int r = sink_pwrite_all(a->fd, a->dfd, a->job[k0].buf, a->job[k0].len, a->job[k0].off, failed_at);
	return r ? r : 1;
}

static void *aio_main(void *arg)
{
	struct sink_aio *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->stop && a->completed == a->submitted)
			pthread_cond_wait(&a->more, &a->mu);
		if (a->completed == a->submitted)
			break;
		uint64_t first = a->completed, at = 0;
		unsigned n = (unsigned)(a->submitted - a->completed);
		int failed = a->err;
		pthread_mutex_unlock(&a->mu);
		/* After a failure the rest is dropped: the run is lost anyway,
		 * and the writer learns of it at its next submit. */
		uint64_t t0 = now_ns();
		int r = failed ? (int)n : write_jobs(a, first, n, &at);
		uint64_t ns = now_ns() - t0, bytes = 0;
		for (int i = 0; !failed && i < r; i++)
			bytes += a->job[(first + (uint64_t)i) % SINK_STAGES].len;
		pthread_mutex_lock(&a->mu);
		sink_meter_add(&a->meter, bytes, ns);
		if (r < 0 && !a->err) {
			a->err = r;
			a->err_offset = at;
		}
		a->completed += r < 0 ? 1 : (uint64_t)r;
		pthread_cond_broadcast(&a->less);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int sink_aio_start(struct sink_aio **out, int fd, int dfd)
{
	struct sink_aio *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fd = fd;
	a->dfd = dfd;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->more, NULL);
	pthread_cond_init(&a->less, NULL);
	int r = thread_start(&a->thread, "bgsnap-io", aio_main, a);
	if (r) {
		pthread_cond_destroy(&a->less);
		pthread_cond_destroy(&a->more);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return r;
	}
	*out = a;
	return 0;
}

static int sticky(struct sink_aio *a, uint64_t *failed_at)
{
	*failed_at = a->err_offset;
	return a->err;
}

int sink_aio_submit(struct sink_aio *a, const uint8_t *buf, size_t len, uint64_t off, uint64_t *failed_at)
{
	pthread_mutex_lock(&a->mu);
	unsigned k = (unsigned)(a->submitted % SINK_STAGES);
	a->job[k].buf = buf;
	a->job[k].len = len;
	a->job[k].off = off;
	a->submitted++;
	pthread_cond_signal(&a->more);
	int r = sticky(a, failed_at);
	pthread_mutex_unlock(&a->mu);
	return r;
}

int sink_aio_wait(struct sink_aio *a, unsigned in_flight, uint64_t *failed_at)
{
	pthread_mutex_lock(&a->mu);
	while (a->submitted - a->completed > in_flight)
		pthread_cond_wait(&a->less, &a->mu);
	int r = sticky(a, failed_at);
	pthread_mutex_unlock(&a->mu);
	return r;
}

uint64_t sink_aio_rate(struct sink_aio *a)
{
	pthread_mutex_lock(&a->mu);
	uint64_t r = sink_meter_rate(&a->meter);
	pthread_mutex_unlock(&a->mu);
	return r;
}

void sink_aio_stop(struct sink_aio *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->more);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->less);
	pthread_cond_destroy(&a->more);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
