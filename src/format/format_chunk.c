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
 * writer goes on gathering the next; the writer alone writes records, as
 * chunks come back compressed, so the output is never shared.
 *
 * The pages are copied into the chunk: the caller's memory may change (a
 * saved page is unprotected) as soon as a call returns.  Every buffer is
 * allocated by fwc_new, so a fork child (a pool without threads) writes
 * without allocating.  Fault copies do not join the chunk (they would end
 * it: they are scattered): they are gathered into a list of single pages,
 * compressed by the pool too, one frame (one record) per page.
 *
 * An adaptive codec (fmt_codec.adaptive) decides at the start of each run
 * chunk and each list of fault copies whether to compress it, by the
 * rates of format_adapt.h: what it stores raw goes straight from the
 * caller's pages into the batch, with no copy into a chunk, so the raw
 * path costs what an uncompressed writer's does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/codec.h"
#include "format/format_adapt.h"
#include "format/format_cpool.h"
#include "format/format_int.h"

#define RAW_PERCENT 97u
#define CHUNK_BYTES ((size_t)FMT_MAX_CPAGES * FMT_PAGE_SIZE)
#define MAX_THREADS 64u

struct fmt_chunker {
	struct cpool *pool;
	struct cpool_slot *cur;    /* the run being gathered, or NULL          */
	struct cpool_slot *list;   /* the single pages being gathered, or NULL */
	int adaptive;
	uint64_t max_rate;
	unsigned raw_streak;       /* run chunks stored raw by choice in a row */
	/* The run stored raw by choice, counted in chunks as if gathered. */
	int raw_open;
	uint32_t raw_region;
	uint64_t raw_next, raw_len;
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
	c->adaptive = codec->adaptive != 0;
	c->max_rate = codec->max_rate;
	unsigned threads = codec->threads < MAX_THREADS ? codec->threads : MAX_THREADS;
	/* A run and a list being gathered, one chunk per worker, one being
	 * written out. */
	return cpool_new(&c->pool, threads, threads ? threads + 3 : 2, CHUNK_BYTES, codec->level, w->err);
}

void fwc_free(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	if (!c)
		return;
	cpool_free(c->pool);
	free(c);
	w->cz = NULL;
}

/* Pages [first, first+count) at `raw` as one CPAGES record of the frame
 * (clen bytes), or as PAGES records when compressing did not pay. */
static int emit(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *raw,
                const void *frame, size_t clen)
{
	size_t len = (size_t)count * FMT_PAGE_SIZE;
	if (clen && clen <= len / 100 * RAW_PERCENT) {
		w->chunks_compressed++;
		return fw_write_cpages(w, region, first, count, frame, clen);
	}
	w->chunks_raw++;
	return fw_write_raw(w, region, first, count, raw);
}

static int emit_slot(struct fmt_writer *w, const struct cpool_slot *s)
{
	if (!s->is_list)
		return emit(w, s->region, s->first, s->count, s->raw, s->frame, s->clen);
	size_t bound = cpool_page_bound(w->cz->pool);
	for (uint64_t i = 0; i < s->count; i++) {
		const struct cpool_page *pg = &s->pages[i];
		int rc = emit(w, pg->region, pg->page, 1, s->raw + i * FMT_PAGE_SIZE, s->frame + i * bound, pg->clen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Writes out a compressed chunk, if one is done (or, wait, once one is).
 * 1 if one was written, 0 if none is in flight, or -errno. */
static int retire_one(struct fmt_writer *w, int wait)
{
	struct fmt_chunker *c = w->cz;
	struct cpool_slot *s = cpool_done(c->pool, wait);
	if (!s)
		return 0;
	int rc = emit_slot(w, s);
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

/* Hands a gathered chunk (*slot) to the compressors. */
static int submit(struct fmt_writer *w, struct cpool_slot **slot)
{
	if (!*slot)
		return 0;
	cpool_submit(w->cz->pool, *slot);
	*slot = NULL;
	/* Adaptive without threads: compressing was chosen because it pays
	 * now, and nobody else would compress the chunk before a buffer ran
	 * out. */
	return retire(w, w->cz->adaptive && !cpool_threads(w->cz->pool));
}

/* A slot to gather into: when none is free, one in flight is written out
 * first (bounded memory: the writer waits for compression). */
static int claim(struct fmt_writer *w, struct cpool_slot **slot)
{
	while (!(*slot = cpool_get(w->cz->pool))) {
		int rc = retire_one(w, 1);
		if (rc <= 0)   /* 0: none free yet none submitted */
			return rc < 0 ? rc : err_set(w->err, -EIO, "format: compression buffers lost");
	}
	return 0;
}

/* Where the next chunk goes: 1 and *slot claimed (compress it), 0 (store
 * it raw: adaptive only), or -errno. */
static int start_chunk(struct fmt_writer *w, struct cpool_slot **slot, int is_run)
{
	struct fmt_chunker *c = w->cz;
	if (!c->adaptive) {
		int rc = claim(w, slot);
		return rc < 0 ? rc : 1;
	}
	/* Chunks done meanwhile are written out first: they may free a
	 * buffer, and they are what the destination waits for. */
	int rc = retire(w, 0);
	if (rc < 0)
		return rc;
	struct fmt_adapt_in in = {
		.dest_rate = w->out.rate ? w->out.rate(w->out.ctx) : 0,
		.max_rate = c->max_rate,
		.threads = cpool_threads(c->pool),
		.slot_free = cpool_has_free(c->pool),
		.raw_streak = is_run ? c->raw_streak : 0,
	};
	cpool_rates(c->pool, &in.comp_rate, &in.ratio_permille);
	int how = fmt_adapt_choose(&in);
	if (how == FMT_ADAPT_COMPRESS_WAIT)
		rc = claim(w, slot);
	else if (how != FMT_ADAPT_COMPRESS || !(*slot = cpool_get(c->pool)))
		return 0;
	if (rc < 0)
		return rc;
	if (is_run)
		c->raw_streak = 0;
	return 1;
}

/* Pages stored raw by choice, counted as the chunks they would have
 * been gathered into. */
static void count_raw(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count)
{
	struct fmt_chunker *c = w->cz;
	while (count) {
		if (!c->raw_open || c->raw_region != region || c->raw_next != first || c->raw_len == FMT_MAX_CPAGES) {
			c->raw_open = 1;
			c->raw_region = region;
			c->raw_len = 0;
			w->chunks_raw++;
			c->raw_streak++;
		}
		uint64_t k = FMT_MAX_CPAGES - c->raw_len;
		if (k > count)
			k = count;
		c->raw_len += k;
		first += k;
		count -= k;
		c->raw_next = first;
	}
}

int fwc_flush(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	if (!c)
		return 0;
	int rc = submit(w, &c->cur);
	if (rc >= 0)
		rc = submit(w, &c->list);
	return rc < 0 ? rc : retire(w, 1);
}

int fwc_add(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data)
{
	struct fmt_chunker *c = w->cz;
	const uint8_t *d = data;
	while (count) {
		struct cpool_slot *s = c->cur;
		if (s && (s->region != region || s->first + s->count != first)) {
			int rc = submit(w, &c->cur);
			if (rc < 0)
				return rc;
			s = NULL;
		}
		if (!s) {
			int rc = start_chunk(w, &c->cur, 1);
			if (rc < 0)
				return rc;
			if (!rc) {
				count_raw(w, region, first, count);
				return fw_queue_raw(w, region, first, count, d);
			}
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
			int rc = submit(w, &c->cur);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int fwc_page(struct fmt_writer *w, uint32_t region, uint64_t page, const void *data)
{
	struct fmt_chunker *c = w->cz;
	if (!c->list) {
		int rc = start_chunk(w, &c->list, 0);
		if (rc < 0)
			return rc;
		if (!rc) {
			w->chunks_raw++;
			return fw_queue_raw(w, region, page, 1, data);
		}
		c->list->is_list = 1;
	}
	struct cpool_slot *s = c->list;
	memcpy(s->raw + s->count * FMT_PAGE_SIZE, data, FMT_PAGE_SIZE);
	s->pages[s->count++] = (struct cpool_page){ .region = region, .page = page };
	return s->count == cpool_list_max(c->pool) ? submit(w, &c->list) : 0;
}
