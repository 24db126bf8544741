/*
 * format_chunk.c - the encoder's compressed path: non-zero pages are
 * gathered into a chunk of consecutive pages of one region (at most
 * FMT_MAX_CPAGES, 4 MiB), and a chunk becomes one CPAGES record, one zstd
 * frame that decodes on its own, so the index still reaches every page
 * through one decode.  A chunk that does not shrink below RAW_PERCENT of
 * its size is written as PAGES records instead: incompressible memory
 * costs a compression attempt, never space.
 *
 * The pages are copied into the chunk: the caller's memory may change (a
 * saved page is unprotected) as soon as a call returns.  Every buffer is
 * allocated by fwc_new, so a fork child writes without allocating.
 * Fault copies do not join the chunk (they would end it: they are
 * scattered); each is compressed on its own at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/codec.h"
#include "format/format_int.h"

#define RAW_PERCENT 97u
#define CHUNK_BYTES ((size_t)FMT_MAX_CPAGES * FMT_PAGE_SIZE)

struct fmt_chunker {
	struct codec_cctx *cctx;
	uint8_t *raw;              /* CHUNK_BYTES: the pending chunk's pages */
	uint8_t *frame;            /* codec_bound(CHUNK_BYTES)               */
	size_t frame_cap;
	uint32_t region;
	uint64_t first, count;     /* count 0: nothing pending               */
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
	int rc = codec_cctx_new(&c->cctx, codec->level, w->err);
	if (rc < 0)
		return rc;
	c->frame_cap = codec_bound(CHUNK_BYTES);
	c->raw = malloc(CHUNK_BYTES);
	c->frame = malloc(c->frame_cap);
	if (!c->raw || !c->frame)
		return err_set(w->err, -ENOMEM, "format: out of memory for the compression buffers");
	return 0;
}

void fwc_free(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	if (!c)
		return;
	codec_cctx_free(c->cctx);
	free(c->raw);
	free(c->frame);
	free(c);
	w->cz = NULL;
}

/* Pages [first, first+count) at `data` as one CPAGES record, or as PAGES
 * records when compressing does not pay. */
static int emit(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data)
{
	struct fmt_chunker *c = w->cz;
	size_t len = (size_t)count * FMT_PAGE_SIZE;
	size_t clen = codec_compress(c->cctx, c->frame, c->frame_cap, data, len);
	if (clen && clen <= len / 100 * RAW_PERCENT)
		return fw_write_cpages(w, region, first, count, c->frame, clen);
	return fw_write_raw(w, region, first, count, data);
}

int fwc_flush(struct fmt_writer *w)
{
	struct fmt_chunker *c = w->cz;
	if (!c || !c->count)
		return 0;
	uint64_t n = c->count;
	c->count = 0;
	return emit(w, c->region, c->first, n, c->raw);
}

int fwc_add(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data)
{
	struct fmt_chunker *c = w->cz;
	const uint8_t *d = data;
	while (count) {
		if (c->count && (c->region != region || c->first + c->count != first)) {
			int rc = fwc_flush(w);
			if (rc < 0)
				return rc;
		}
		if (!c->count) {
			c->region = region;
			c->first = first;
		}
		uint64_t k = FMT_MAX_CPAGES - c->count;
		if (k > count)
			k = count;
		memcpy(c->raw + c->count * FMT_PAGE_SIZE, d, (size_t)k * FMT_PAGE_SIZE);
		c->count += k;
		first += k;
		count -= k;
		d += k * FMT_PAGE_SIZE;
		if (c->count == FMT_MAX_CPAGES) {
			int rc = fwc_flush(w);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int fwc_page(struct fmt_writer *w, uint32_t region, uint64_t page, const void *data)
{
	return emit(w, region, page, 1, data);
}
