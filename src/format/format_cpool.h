/*
 * format_cpool.h - the compressor pool behind format_chunk.c: a ring of
 * chunk slots that worker threads compress while the writer fills the
 * next one.  The ring is emitted in the order it was filled, so records
 * keep file order whatever order the workers finish in.
 *
 * Memory is fixed at creation: `slots` chunk buffers (raw input and a
 * worst-case frame each) and one compressor workspace per worker plus one
 * for the writer.  Nothing allocates afterwards, and with no worker
 * thread the writer compresses every chunk itself, which is how a fork
 * child uses the pool (it can start no thread).
 *
 * Only the writer calls cpool_get/submit/done/release and
 * cpool_compress_here; workers touch a slot only between submit and done.
 */
#ifndef BGSNAP_FORMAT_CPOOL_H
#define BGSNAP_FORMAT_CPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct cpool_slot {
	uint8_t *raw;              /* the chunk's pages, filled by the writer */
	uint8_t *frame;            /* the compressed frame, by whoever compresses */
	uint32_t region;
	uint64_t first, count;     /* pages in raw                                */
	size_t clen;               /* frame bytes; 0: the codec failed (store raw) */
	int state;                 /* private to format_cpool.c                   */
};

struct cpool;

/* A pool of `threads` workers (0: none) and `slots` chunk buffers of
 * `chunk_bytes` (at least 1; threads + 2 keeps every worker busy while the
 * writer fills one and emits one).  0 or -errno with a message in err. */
int cpool_new(struct cpool **out, unsigned threads, unsigned slots, size_t chunk_bytes, int level,
              struct bgsnap_err *err);
/* Stops the workers (a chunk being compressed is finished, queued ones are
 * dropped), joins them and frees everything.  NULL is a no-op. */
void cpool_free(struct cpool *p);

/* The next free slot for the writer to fill, or NULL when every slot is
 * in flight (the caller emits the oldest first: cpool_done(p, 1)). */
struct cpool_slot *cpool_get(struct cpool *p);
/* Hands the filled slot (region, first, count and raw set) to the workers. */
void cpool_submit(struct cpool *p, struct cpool_slot *s);
/* The oldest submitted slot once it is compressed, or NULL when nothing is
 * submitted, or (wait 0) when it is not compressed yet.  Waiting, the
 * writer compresses a queued chunk itself rather than sit idle. */
struct cpool_slot *cpool_done(struct cpool *p, int wait);
/* The slot cpool_done returned is written out: it is free again. */
void cpool_release(struct cpool *p, struct cpool_slot *s);

/* Compresses in the calling (writer) thread with the writer's workspace:
 * as codec_compress. */
size_t cpool_compress_here(struct cpool *p, void *dst, size_t cap, const void *src, size_t len);

#endif
