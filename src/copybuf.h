/*
 * copybuf.h - the bounded buffer of pages copied on a write fault.
 *
 * The fault side takes a free slot (waiting while all slots are in use:
 * back-pressure, so the extra memory never exceeds the capacity), copies the
 * page into it and queues it; the writer drains the queue, writes the
 * copies and frees their slots.  Slots are mmap'ed once and touched only when
 * used, so an idle buffer costs address space, not memory.
 */
#ifndef BGSNAP_COPYBUF_H
#define BGSNAP_COPYBUF_H

#include <pthread.h>
#include <stdint.h>

struct copybuf_item {
	uint32_t region;
	uint32_t slot;
	uint64_t page;
};

struct copybuf {
	uint8_t *mem;
	size_t mem_len;
	uint32_t nslots;
	uint32_t *free_stack;
	uint32_t nfree;
	struct copybuf_item *queue;     /* ring of nslots items */
	uint32_t qhead, qcount;
	uint32_t peak;                  /* most slots ever in use at once */
	int closed;
	pthread_mutex_t lock;
	pthread_cond_t space;           /* a slot was freed, or closed */
	pthread_cond_t items;           /* an item was queued, or closed */
};

int copybuf_init(struct copybuf *cb, size_t bytes);
void copybuf_destroy(struct copybuf *cb);
/* Returns a free slot's memory and its number, waiting while none is free;
 * NULL once the buffer is closed. */
void *copybuf_get(struct copybuf *cb, uint32_t *slot);
/* Queues a filled slot for the writer. */
void copybuf_put(struct copybuf *cb, uint32_t region, uint64_t page, uint32_t slot);
/* Moves up to `max` queued items to `out`; waits up to `wait_ms` when the
 * queue is empty (0: do not wait).  Returns the number taken. */
uint32_t copybuf_take(struct copybuf *cb, struct copybuf_item *out, uint32_t max, int wait_ms);
void *copybuf_slot(struct copybuf *cb, uint32_t slot);
void copybuf_release(struct copybuf *cb, const struct copybuf_item *items, uint32_t n);
/* Wakes every waiter; get() returns NULL from now on. */
void copybuf_close(struct copybuf *cb);
uint32_t copybuf_peak(struct copybuf *cb);

#endif
