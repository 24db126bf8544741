/*
 * format_cpool.h - the compressor pool behind format_chunk.c: chunk slots
 * that worker threads compress while the writer fills the next one.  A
 * slot holds either one run of consecutive pages (one frame) or a list of
 * single pages from anywhere (fault copies, one frame each).  Slots come
 * back in the order they were compressed, oldest submitted first among
 * those done, so the writer never waits for a slot it is still filling.
 *
 * Memory is fixed at creation: `slots` chunk buffers (raw input and a
 * worst-case frame area each) and one compressor workspace per worker plus
 * one for the writer.  Nothing allocates afterwards, and with no worker
 * thread the writer compresses every chunk itself, which is how a fork
 * child uses the pool (it can start no thread).
 *
 * Only the writer calls cpool_get/submit/done/release; workers touch a
 * slot only between submit and done.
 */
#ifndef BGSNAP_FORMAT_CPOOL_H
#define BGSNAP_FORMAT_CPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* One page of a list slot. */
struct cpool_page {
	uint32_t region;
	uint64_t page;
	size_t clen;               /* its frame's bytes (at frame + i * page_bound); 0: store raw */
};

struct cpool_slot {
	uint8_t *raw;              /* the pages, filled by the writer                  */
	uint8_t *frame;            /* the frame(s), by whoever compresses              */
	int is_list;               /* 0: one run region/first/count; 1: pages[count]   */
	uint32_t region;
	uint64_t first, count;     /* pages in raw                                     */
	size_t clen;               /* a run's frame bytes; 0: the codec failed (raw)   */
	struct cpool_page *pages;  /* list_max entries                                 */
	int state;                 /* private to format_cpool.c                        */
	uint64_t seq;              /* private: submission order                        */
};

struct cpool;

/* A pool of `threads` workers (0: none) and `slots` buffers of
 * `chunk_bytes` (at least 2: the writer may fill a run and a list at
 * once).  0 or -errno with a message in err. */
int cpool_new(struct cpool **out, unsigned threads, unsigned slots, size_t chunk_bytes, int level,
              struct bgsnap_err *err);
/* Stops the workers (a chunk being compressed is finished, queued ones are
 * dropped), joins them and frees everything.  NULL is a no-op. */
void cpool_free(struct cpool *p);
/* Pages a list slot holds at most, and the frame room of each. */
uint64_t cpool_list_max(const struct cpool *p);
size_t cpool_page_bound(const struct cpool *p);

/* A free slot for the writer to fill (count 0), or NULL when none is free
 * (the caller writes one out first: cpool_done(p, 1)). */
struct cpool_slot *cpool_get(struct cpool *p);
/* Hands the filled slot to the workers. */
void cpool_submit(struct cpool *p, struct cpool_slot *s);
/* A compressed slot (the oldest submitted of those done), or NULL when
 * none is submitted, or (wait 0) none is compressed yet.  Waiting, the
 * writer compresses a queued chunk itself rather than sit idle. */
struct cpool_slot *cpool_done(struct cpool *p, int wait);
/* The slot cpool_done returned is written out: it is free again. */
void cpool_release(struct cpool *p, struct cpool_slot *s);
/* 1 if cpool_get would return a slot now. */
int cpool_has_free(struct cpool *p);
/* Worker threads (0: the writer compresses). */
unsigned cpool_threads(const struct cpool *p);
/* How fast recent chunks compressed: raw bytes per second of the CPU
 * time of the thread that compressed them, and their stored/raw in per mille (1..1000;
 * a chunk the codec failed on counts as raw); both 0 before the first. */
void cpool_rates(struct cpool *p, uint64_t *raw_per_s, uint32_t *ratio_permille);

#endif
