/* copybuf.c - lock-free bounded fault copy buffer (see copybuf.h). */
#include "engine/copybuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util/page.h"

/* A slot holds one page. */
#define SLOT PAGE_SIZE_

static int init_with(struct copybuf *cb, size_t bytes, void *mem, size_t mem_len);

int copybuf_init(struct copybuf *cb, size_t bytes)
{
	return init_with(cb, bytes, NULL, 0);
}

int copybuf_init_mem(struct copybuf *cb, size_t bytes, void *mem, size_t mem_len)
{
	return init_with(cb, bytes, mem, mem_len);
}

void *copybuf_detach(struct copybuf *cb, size_t *mem_len)
{
	void *m = cb->mem;
	*mem_len = cb->mem_len;
	cb->mem = NULL;
	return m;
}

static int init_with(struct copybuf *cb, size_t bytes, void *mem, size_t mem_len)
{
	memset(cb, 0, sizeof(*cb));
	size_t n = bytes / SLOT;
	if (n == 0)
		n = 1;
	if (n > (1u << 28)) {
		if (mem)
			munmap(mem, mem_len);   /* ours since the call, as below */
		return -EINVAL;
	}
	cb->nslots = (uint32_t)n;
	cb->nwords = (uint32_t)((n + 63) / 64);
	cb->mem_len = n * SLOT;
	if (mem && mem_len != cb->mem_len)
		munmap(mem, mem_len);
	else if (mem)
		cb->mem = mem;
	if (!cb->mem)
		cb->mem = mmap(NULL, cb->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (cb->mem == MAP_FAILED) {
		cb->mem = NULL;
		return -ENOMEM;
	}
	cb->used = calloc(cb->nwords, sizeof(*cb->used));
	cb->ready = calloc(cb->nwords, sizeof(*cb->ready));
	cb->meta = calloc(n, sizeof(*cb->meta));
	if (!cb->used || !cb->ready || !cb->meta) {
		copybuf_destroy(cb);
		return -ENOMEM;
	}
	/* Bits past the last slot are permanently taken. */
	if (n % 64)
		atomic_store(&cb->used[cb->nwords - 1], ~0ull << (n % 64));
	return 0;
}

void copybuf_destroy(struct copybuf *cb)
{
	if (cb->mem)
		munmap(cb->mem, cb->mem_len);
	free((void *)cb->used);
	free((void *)cb->ready);
	free(cb->meta);
	memset(cb, 0, sizeof(*cb));
}

static int try_get(struct copybuf *cb, uint32_t *slot)
{
	uint32_t start = atomic_load_explicit(&cb->hint, memory_order_relaxed);
	for (uint32_t i = 0; i < cb->nwords; i++) {
		uint32_t w = (start + i) % cb->nwords;
		uint64_t v = atomic_load_explicit(&cb->used[w], memory_order_relaxed);
		while (v != ~0ull) {
			unsigned bit = (unsigned)__builtin_ctzll(~v);
			if (atomic_compare_exchange_weak_explicit(&cb->used[w], &v, v | (1ull << bit),
			                                          memory_order_acquire, memory_order_relaxed)) {
				atomic_store_explicit(&cb->hint, w, memory_order_relaxed);
				*slot = w * 64 + bit;
				return 1;
			}
		}
	}
	return 0;
}

void *copybuf_get(struct copybuf *cb, uint32_t *slot)
{
	for (unsigned spins = 0;; spins++) {
		if (atomic_load_explicit(&cb->closed, memory_order_acquire))
			return NULL;
		if (try_get(cb, slot))
			break;
		/* Full: back-pressure.  nanosleep is async-signal-safe. */
		struct timespec ts = { 0, spins < 16 ? 2000 : 50000 };
		nanosleep(&ts, NULL);
	}
	uint32_t u = atomic_fetch_add_explicit(&cb->inuse, 1, memory_order_relaxed) + 1;
	uint32_t p = atomic_load_explicit(&cb->peak, memory_order_relaxed);
	while (u > p && !atomic_compare_exchange_weak_explicit(&cb->peak, &p, u, memory_order_relaxed,
	                                                      memory_order_relaxed))
		;
	return cb->mem + (size_t)*slot * SLOT;
}

void copybuf_put(struct copybuf *cb, uint32_t region, uint64_t page, uint32_t slot)
{
	cb->meta[slot] = (struct copybuf_item){ .region = region, .slot = slot, .page = page };
	atomic_fetch_or_explicit(&cb->ready[slot / 64], 1ull << (slot % 64), memory_order_release);
	atomic_fetch_add_explicit(&cb->nready, 1, memory_order_release);
}

uint32_t copybuf_take(struct copybuf *cb, struct copybuf_item *out, uint32_t max, int wait_ms)
{
	for (int waited = 0; atomic_load_explicit(&cb->nready, memory_order_acquire) == 0; waited++) {
		if (waited >= wait_ms * 10 || atomic_load(&cb->closed))
			return 0;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	uint32_t want = atomic_load_explicit(&cb->nready, memory_order_acquire);
	if (want > max)
		want = max;
	/* A word of ready bits at a time: slots are reused lowest-first, so a
	 * byte-per-slot scan resuming after the last slot taken went once
	 * around the whole buffer per fault (measured: 17% of the writer's
	 * CPU with 64 MiB of slots). */
	uint32_t n = 0, w = cb->scan;
	for (uint32_t i = 0; i < cb->nwords && n < want; i++, w = w + 1 == cb->nwords ? 0 : w + 1) {
		uint64_t v = atomic_load_explicit(&cb->ready[w], memory_order_acquire), took = 0;
		while (v && n < want) {
			unsigned bit = (unsigned)__builtin_ctzll(v);
			v &= v - 1;
			took |= 1ull << bit;
			out[n++] = cb->meta[w * 64 + bit];
		}
		if (took) {
			/* Only this thread clears bits, and only bits it saw set. */
			atomic_fetch_and_explicit(&cb->ready[w], ~took, memory_order_relaxed);
			cb->scan = w;
		}
	}
	if (n)
		atomic_fetch_sub_explicit(&cb->nready, n, memory_order_relaxed);
	return n;
}

void *copybuf_slot(struct copybuf *cb, uint32_t slot)
{
	return cb->mem + (size_t)slot * SLOT;
}

void copybuf_release(struct copybuf *cb, const struct copybuf_item *items, uint32_t n)
{
	/* Count down before freeing, as get() counts up after claiming: inuse
	 * then never exceeds the slots really held, and neither does the peak
	 * reported as extra memory (freeing first let a producer's count-up
	 * overtake ours: t_copybuf saw 74 of 70). */
	atomic_fetch_sub_explicit(&cb->inuse, n, memory_order_relaxed);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = items[i].slot;
		atomic_fetch_and_explicit(&cb->used[s / 64], ~(1ull << (s % 64)), memory_order_release);
	}
}

void copybuf_close(struct copybuf *cb)
{
	atomic_store_explicit(&cb->closed, 1, memory_order_release);
}

uint32_t copybuf_peak(struct copybuf *cb)
{
	return atomic_load(&cb->peak);
}
