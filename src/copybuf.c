/* copybuf.c - bounded fault copy buffer (see copybuf.h). */
#include "copybuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SLOT 4096u

int copybuf_init(struct copybuf *cb, size_t bytes)
{
	memset(cb, 0, sizeof(*cb));
	size_t n = bytes / SLOT;
	if (n == 0)
		n = 1;
	if (n > UINT32_MAX / 2)
		return -EINVAL;
	cb->nslots = (uint32_t)n;
	cb->mem_len = n * SLOT;
	cb->mem = mmap(NULL, cb->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (cb->mem == MAP_FAILED) {
		cb->mem = NULL;
		return -ENOMEM;
	}
	cb->free_stack = malloc(sizeof(uint32_t) * n);
	cb->queue = malloc(sizeof(struct copybuf_item) * n);
	if (!cb->free_stack || !cb->queue) {
		copybuf_destroy(cb);
		return -ENOMEM;
	}
	/* Lowest slots first, so a lightly used buffer touches few pages. */
	for (uint32_t i = 0; i < cb->nslots; i++)
		cb->free_stack[i] = cb->nslots - 1 - i;
	cb->nfree = cb->nslots;
	pthread_mutex_init(&cb->lock, NULL);
	pthread_cond_init(&cb->space, NULL);
	pthread_cond_init(&cb->items, NULL);
	return 0;
}

void copybuf_destroy(struct copybuf *cb)
{
	if (cb->mem)
		munmap(cb->mem, cb->mem_len);
	if (cb->free_stack) {
		pthread_mutex_destroy(&cb->lock);
		pthread_cond_destroy(&cb->space);
		pthread_cond_destroy(&cb->items);
	}
	free(cb->free_stack);
	free(cb->queue);
	memset(cb, 0, sizeof(*cb));
}

void *copybuf_get(struct copybuf *cb, uint32_t *slot)
{
	pthread_mutex_lock(&cb->lock);
	while (cb->nfree == 0 && !cb->closed)
		pthread_cond_wait(&cb->space, &cb->lock);
	if (cb->closed) {
		pthread_mutex_unlock(&cb->lock);
		return NULL;
	}
	uint32_t s = cb->free_stack[--cb->nfree];
	uint32_t used = cb->nslots - cb->nfree;
	if (used > cb->peak)
		cb->peak = used;
	pthread_mutex_unlock(&cb->lock);
	*slot = s;
	return cb->mem + (size_t)s * SLOT;
}

void copybuf_put(struct copybuf *cb, uint32_t region, uint64_t page, uint32_t slot)
{
	pthread_mutex_lock(&cb->lock);
	/* Never overflows: at most nslots slots are out, each queued once. */
	uint32_t tail = (cb->qhead + cb->qcount) % cb->nslots;
	cb->queue[tail] = (struct copybuf_item){ .region = region, .slot = slot, .page = page };
	cb->qcount++;
	pthread_cond_signal(&cb->items);
	pthread_mutex_unlock(&cb->lock);
}

uint32_t copybuf_take(struct copybuf *cb, struct copybuf_item *out, uint32_t max, int wait_ms)
{
	pthread_mutex_lock(&cb->lock);
	if (cb->qcount == 0 && wait_ms > 0 && !cb->closed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)wait_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&cb->items, &cb->lock, &ts);
	}
	uint32_t n = 0;
	while (n < max && cb->qcount > 0) {
		out[n++] = cb->queue[cb->qhead];
		cb->qhead = (cb->qhead + 1) % cb->nslots;
		cb->qcount--;
	}
	pthread_mutex_unlock(&cb->lock);
	return n;
}

void *copybuf_slot(struct copybuf *cb, uint32_t slot)
{
	return cb->mem + (size_t)slot * SLOT;
}

void copybuf_release(struct copybuf *cb, const struct copybuf_item *items, uint32_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&cb->lock);
	for (uint32_t i = 0; i < n; i++)
		cb->free_stack[cb->nfree++] = items[i].slot;
	pthread_cond_broadcast(&cb->space);
	pthread_mutex_unlock(&cb->lock);
}

void copybuf_close(struct copybuf *cb)
{
	pthread_mutex_lock(&cb->lock);
	cb->closed = 1;
	pthread_cond_broadcast(&cb->space);
	pthread_cond_broadcast(&cb->items);
	pthread_mutex_unlock(&cb->lock);
}

uint32_t copybuf_peak(struct copybuf *cb)
{
	pthread_mutex_lock(&cb->lock);
	uint32_t p = cb->peak;
	pthread_mutex_unlock(&cb->lock);
	return p;
}
