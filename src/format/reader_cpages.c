/*
 * reader_cpages.c - a CPAGES record's pages: its one frame decoded into a
 * buffer of exactly count pages, for every way in (read_page's cache,
 * read_region, the sequential pass, restore).  The record's crc and its
 * header against the index were checked before; what the frame says is
 * checked by the codec (codec.h): declared size, exact span, decoded size.
 */
#include <errno.h>
#include <stdlib.h>

#include "format/codec.h"
#include "format/reader_int.h"

int rd_decode_into(struct rd_dec *d, const struct run *x, const uint8_t *frame, uint64_t clen, uint8_t *out,
                   struct bgsnap_err *err)
{
	size_t dlen = (size_t)x->count * FMT_PAGE_SIZE;
	if (x->count < 1 || x->count > FMT_MAX_CPAGES || clen >= dlen)
		return err_set(err, -EBADMSG, "CPAGES record at offset %llu: %llu pages in %llu compressed bytes",
		               (ull)x->offset, (ull)x->count, (ull)clen);
	char why[160];
	int rc = codec_decompress(&d->dctx, frame, (size_t)clen, out, dlen, why, sizeof(why));
	if (rc < 0)
		return err_set(err, rc, "CPAGES record at offset %llu (region %u pages %llu+%llu): %s", (ull)x->offset,
		               x->region, (ull)x->first, (ull)x->count, why);
	return 0;
}

int rd_decode(struct rd_dec *d, const struct run *x, const uint8_t *frame, uint64_t clen, const uint8_t **pages,
              struct bgsnap_err *err)
{
	size_t dlen = (size_t)x->count * FMT_PAGE_SIZE;
	if (x->count >= 1 && x->count <= FMT_MAX_CPAGES && dlen > d->cap) {
		/* Whole chunks: the buffer grows at most once or twice. */
		size_t cap = dlen < (size_t)FMT_MAX_CPAGES * FMT_PAGE_SIZE / 4 ? (size_t)FMT_MAX_CPAGES * FMT_PAGE_SIZE / 4
		                                                               : (size_t)FMT_MAX_CPAGES * FMT_PAGE_SIZE;
		uint8_t *n = realloc(d->buf, cap);
		if (!n)
			return err_set(err, -ENOMEM, "out of memory (%zu bytes to decode a chunk)", cap);
		d->buf = n;
		d->cap = cap;
	}
	int rc = rd_decode_into(d, x, frame, clen, d->buf, err);
	if (rc == 0)
		*pages = d->buf;
	return rc;
}

void rd_dec_free(struct rd_dec *d)
{
	codec_dctx_free(d->dctx);
	free(d->buf);
	d->dctx = NULL;
	d->buf = NULL;
	d->cap = 0;
}
