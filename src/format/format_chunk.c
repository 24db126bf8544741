/*
 * format_chunk.c - the encoder's compressed path: non-zero pages are
 * gathered into a chunk of consecutive pages of one region (at most
 * FMT_MAX_CPAGES, 4 MiB), and a chunk becomes one CPAGES record, one zstd
 * frame that decodes on its own, so the index still reaches every page
 * through one decode.  A chunk that does not shrink below RAW_PERCENT of
 * its size is written as PAGES records instead: incompressible memory
 * costs a compression attempt, never space.
 *
 * Chunks are compressed by the pool's workers (format_cpool.c) while the
 * writer goes on gathering the next; the writer alone writes records, in
 * the order the chunks were filled, so the output is never shared.
 *
 * The pages are copied into the chunk: the caller's memory may change (a
 * saved page is unprotected) as soon as a call returns.  Every buffer is
 * allocated by fwc_new, so a fork child (a pool without threads) writes
 * without allocating.  Fault copies do not join the chunk (they would end
 * it: they are scattered); each is compressed on its own at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/codec.h"
#include "format/format_cpool.h"
#include "format/format_int.h"

#define RAW_PERCENT 97u
#define CHUNK_BYTES ((size_t)FMT_MAX_CPAGES * FMT_PAGE_SIZE)
#define MAX_THREADS 64u

struct fmt_chunker {
	struct cpool *pool;
	struct cpool_slot *cur;    /* the chunk being gathered, or NULL      */
	uint8_t *page_frame;       /* codec_bound(one page), for fault copies */
	size_t page_frame_cap;
};

int fwc_new(struct fmt_writer *w, const struct fmt_codec *codec)
{
	if (codec->method != FMT_COMPRESS_ZSTD)
		return err_set(w->err, -EINVAL, "format: unknown compression method %d", codec->method);
	if (!codec_available(codec->method))
		return err_set(w->err, -ENOTSUP, "compression: this bgsnap was built without libzstd");
	struct fmt_chunker *c = calloc(1, sizeof(*c));
	if (!c)
		return err_set(w->err, -ENOMEM, "format: out of memory");
	w->cz = c;
	unsigned threads = codec->threads < MAX_THREADS ? codec->threads : MAX_THREADS;
	/* One slot filling, one per worker, one being written out. */
	int rc = cpool_new(&c->pool, threads, threads ? threads + 2 : 1, CHUNK_BYTES, codec->level, w->err);
	if (rc < 0)
		return rc;
	c->page_frame_cap = codec_bound(FMT_PAGE_SIZE);
	c->page_frame = malloc(c->page_frame_cap);
	if (!c->page_frame)
		return err_set(w->err, -ENOMEM, "format: out of memory for the compression buffers");
	return 0;
}

void fwc_free(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	if (!c)
		return;
	cpool_free(c->pool);
	free(c->page_frame);
	free(c);
	w->cz = NULL;
}

/* Pages [first, first+count) at `raw` as one CPAGES record of the frame
 * (clen bytes), or as PAGES records when compressing did not pay. */
static int emit(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *raw,
                const void *frame, size_t clen)
{
	size_t len = (size_t)count * FMT_PAGE_SIZE;
	if (clen && clen <= len / 100 * RAW_PERCENT)
		return fw_write_cpages(w, region, first, count, frame, clen);
	return fw_write_raw(w, region, first, count, raw);
}

/* Writes out the oldest compressed chunk, if it is done (or, wait, once
 * it is).  1 if one was written, 0 if none is in flight, or -errno. */
static int retire_one(struct fmt_writer *w, int wait)
{
	struct fmt_chunker *c = w->cz;
	struct cpool_slot *s = cpool_done(c->pool, wait);
	if (!s)
		return 0;
	int rc = emit(w, s->region, s->first, s->count, s->raw, s->frame, s->clen);
	cpool_release(c->pool, s);
	return rc < 0 ? rc : 1;
}

static int retire(struct fmt_writer *w, int wait)
{
	int rc;
	while ((rc = retire_one(w, wait)) > 0)
		;
	return rc;
}

/* Hands the pending chunk to the compressors. */
static int submit(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	if (!c->cur)
		return 0;
	cpool_submit(c->pool, c->cur);
	c->cur = NULL;
	return retire(w, 0);
}

/* A slot to gather into: when every one is in flight, the oldest is
 * written out first (bounded memory: the writer waits for compression). */
static int claim(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	while (!(c->cur = cpool_get(c->pool))) {
		int rc = retire_one(w, 1);
		if (rc <= 0)   /* 0: every slot in flight yet none submitted */
			return rc < 0 ? rc : err_set(w->err, -EIO, "format: compression buffers lost");
	}
	return 0;
}

int fwc_flush(struct fmt_writer *w)
{
	if (!w->cz)
		return 0;
	int rc = submit(w);
	return rc < 0 ? rc : retire(w, 1);
}

int fwc_add(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data)
{
	struct fmt_chunker *c = w->cz;
	const uint8_t *d = data;
	while (count) {
		struct cpool_slot *s = c->cur;
		if (s && (s->region != region || s->first + s->count != first)) {
			int rc = submit(w);
			if (rc < 0)
				return rc;
			s = NULL;
		}
		if (!s) {
			int rc = claim(w);
			if (rc < 0)
				return rc;
			s = c->cur;
			s->region = region;
			s->first = first;
		}
		uint64_t k = FMT_MAX_CPAGES - s->count;
		if (k > count)
			k = count;
		memcpy(s->raw + s->count * FMT_PAGE_SIZE, d, (size_t)k * FMT_PAGE_SIZE);
		s->count += k;
		first += k;
		count -= k;
		d += k * FMT_PAGE_SIZE;
		if (s->count == FMT_MAX_CPAGES) {
			int rc = submit(w);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int fwc_page(struct fmt_writer *w, uint32_t region, uint64_t page, const void *data)
{
	struct fmt_chunker *c = w->cz;
	size_t clen = cpool_compress_here(c->pool, c->page_frame, c->page_frame_cap, data, FMT_PAGE_SIZE);
	return emit(w, region, page, 1, data, c->page_frame, clen);
}
