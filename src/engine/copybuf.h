/*
 * copybuf.h - the bounded buffer of pages copied on a write fault.
 *
 * The fault side takes a free slot (waiting while all slots are in use:
 * back-pressure, so the extra memory never exceeds the capacity), copies the
 * page into it and marks it ready; the writer takes ready slots, writes them
 * and frees them.  No locks and no allocation on the fault side: a slot is
 * one bit in a free bitmap (claimed by compare-and-swap) and one ready bit,
 * so the fault path may run in a signal handler.  Slots are mmap'ed once and
 * touched only when used: an idle buffer costs address space, not memory.
 */
#ifndef BGSNAP_COPYBUF_H
#define BGSNAP_COPYBUF_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

struct copybuf_item {
	uint32_t region;
	uint32_t slot;
	uint64_t page;
};

struct copybuf {
	uint8_t *mem;
	size_t mem_len;
	uint32_t nslots, nwords;
	_Atomic uint64_t *used;         /* bit per slot: 1 = taken */
	_Atomic uint64_t *ready;        /* bit per slot: 1 = filled, waiting for the writer */
	struct copybuf_item *meta;      /* per slot: what it holds (published by `ready`) */
	_Atomic uint32_t hint;          /* word to start searching from */
	_Atomic uint32_t inuse, peak, nready;
	_Atomic int closed;
	uint32_t scan;                  /* writer-only: the word take() resumes at */
};

int copybuf_init(struct copybuf *cb, size_t bytes);
/* copybuf_init over `mem` (mem_len bytes, from a copybuf_detach of a
 * buffer of the same size), which the buffer then owns. */
int copybuf_init_mem(struct copybuf *cb, size_t bytes, void *mem, size_t mem_len);
/* Takes the slots' memory out of `cb` (the caller owns it then, to
 * munmap or to pass to copybuf_init_mem); NULL if it has none. */
void *copybuf_detach(struct copybuf *cb, size_t *mem_len);
void copybuf_destroy(struct copybuf *cb);
/* Returns a free slot's memory and its number, waiting (sleeping briefly,
 * async-signal-safe) while none is free; NULL once the buffer is closed. */
void *copybuf_get(struct copybuf *cb, uint32_t *slot);
/* Publishes a filled slot to the writer. */
void copybuf_put(struct copybuf *cb, uint32_t region, uint64_t page, uint32_t slot);
/* Writer side: moves up to `max` ready slots to `out`, waiting up to
 * `wait_ms` when none is ready.  Returns the number taken. */
uint32_t copybuf_take(struct copybuf *cb, struct copybuf_item *out, uint32_t max, int wait_ms);
void *copybuf_slot(struct copybuf *cb, uint32_t slot);
/* Writer side: frees the slots of `items` once written. */
void copybuf_release(struct copybuf *cb, const struct copybuf_item *items, uint32_t n);
/* get() returns NULL from now on, and waiters give up. */
void copybuf_close(struct copybuf *cb);
uint32_t copybuf_peak(struct copybuf *cb);

#endif
