/*
 * codec_zstd.c - CPAGES page data as zstd frames (codec.h).
 *
 * Compression: a static ZSTD_CCtx over one workspace sized at creation for
 * the level, its parameters set once, so that compressing never allocates.
 * Decompression trusts nothing in the frame: the declared content size must equal the size the
 * record header implies, the frame must span the compressed bytes exactly,
 * and the output buffer is exactly that size, so a frame that decodes to
 * more (a decompression bomb) fails inside the bounded buffer.
 */
#include "format/codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bgsnap.h"
#include "format/format.h"

#ifdef BGSNAP_HAVE_ZSTD

#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_initStaticCCtx, ZSTD_CCtx_params, literal compression */
#include <zstd.h>

/* Level -7 with the literals still Huffman-coded (zstd turns that off for
 * its negative levels), not zstd's own default (3) nor level 1: a snapshot
 * competes for the CPU with the host it saves, and the time is what it
 * waits for.  On text-like memory -7 with literals coded compresses 1.4-1.7x
 * as fast per core as level 1 to the same size (without the literals
 * coded it stores 0.77 of the raw size instead of 0.45); on the reference
 * VM's guests it stores within a few percent of level 1
 * (docs/MEASUREMENTS.md, Compression). */
#define DEFAULT_LEVEL (-7)

struct codec_cctx {
	ZSTD_CCtx *cctx;   /* lives inside ws */
	void *ws;
	int level;
};

int codec_available(int method)
{
	return method == FMT_COMPRESS_ZSTD;
}

int codec_cctx_new(struct codec_cctx **out, int level, struct bgsnap_err *err)
{
	*out = NULL;
	if (level == 0)
		level = DEFAULT_LEVEL;
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return err_set(err, -EINVAL, "zstd level %d outside %d..%d", level, ZSTD_minCLevel(), ZSTD_maxCLevel());
	/* The parameters are fixed here, once: every frame then only resets
	 * the session (ZSTD_compress2), with no allocation. */
	ZSTD_CCtx_params *params = ZSTD_createCCtxParams();
	if (!params)
		return err_set(err, -ENOMEM, "out of memory for the zstd parameters");
	ZSTD_CCtxParams_init(params, level);
#if ZSTD_VERSION_NUMBER >= 10500
	/* Memory's text and small integers compress mostly through their
	 * literals: zstd's negative levels would store them raw. */
	if (level < 0)
		ZSTD_CCtxParams_setParameter(params, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
#endif
	struct codec_cctx *c = calloc(1, sizeof(*c));
	size_t wsz = ZSTD_estimateCCtxSize_usingCCtxParams(params);
	if (c)
		c->ws = malloc(wsz);
	if (!c || !c->ws) {
		free(c);
		ZSTD_freeCCtxParams(params);
		return err_set(err, -ENOMEM, "out of memory for the zstd compressor (%zu bytes)", wsz);
	}
	c->cctx = ZSTD_initStaticCCtx(c->ws, wsz);
	c->level = level;
	size_t rc = c->cctx ? ZSTD_CCtx_setParametersUsingCCtxParams(c->cctx, params) : 0;
	ZSTD_freeCCtxParams(params);
	if (!c->cctx || ZSTD_isError(rc)) {
		codec_cctx_free(c);
		return err_set(err, -ENOMEM, "zstd: cannot place a compressor in %zu bytes", wsz);
	}
	*out = c;
	return 0;
}

void codec_cctx_free(struct codec_cctx *c)
{
	if (!c)
		return;
	free(c->ws);
	free(c);
}

size_t codec_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

size_t codec_compress(struct codec_cctx *c, void *dst, size_t cap, const void *src, size_t len)
{
	size_t n = ZSTD_compress2(c->cctx, dst, cap, src, len);
	return ZSTD_isError(n) ? 0 : n;
}

struct codec_dctx {
	ZSTD_DCtx *dctx;
};

void codec_dctx_free(struct codec_dctx *d)
{
	if (!d)
		return;
	ZSTD_freeDCtx(d->dctx);
	free(d);
}

int codec_decompress(struct codec_dctx **dp, const void *src, size_t clen, void *dst, size_t dlen, char *why,
                     size_t why_len)
{
	unsigned long long cs = ZSTD_getFrameContentSize(src, clen);
	if (cs == ZSTD_CONTENTSIZE_ERROR) {
		snprintf(why, why_len, "not a zstd frame");
		return -EBADMSG;
	}
	if (cs == ZSTD_CONTENTSIZE_UNKNOWN || cs != dlen) {
		if (cs == ZSTD_CONTENTSIZE_UNKNOWN)
			snprintf(why, why_len, "zstd frame declares no content size (the record holds %zu bytes)", dlen);
		else
			snprintf(why, why_len, "zstd frame declares %llu bytes, the record holds %zu", cs, dlen);
		return -EBADMSG;
	}
	size_t fl = ZSTD_findFrameCompressedSize(src, clen);
	if (ZSTD_isError(fl) || fl != clen) {
		snprintf(why, why_len, "zstd frame spans %s%zu of the record's %zu compressed bytes",
		         ZSTD_isError(fl) ? "an invalid length, not " : "", ZSTD_isError(fl) ? clen : fl, clen);
		return -EBADMSG;
	}
	if (!*dp) {
		struct codec_dctx *d = calloc(1, sizeof(*d));
		if (d && !(d->dctx = ZSTD_createDCtx())) {
			free(d);
			d = NULL;
		}
		if (!d) {
			snprintf(why, why_len, "out of memory for the zstd decompressor");
			return -ENOMEM;
		}
		*dp = d;
	}
	size_t n = ZSTD_decompressDCtx((*dp)->dctx, dst, dlen, src, clen);
	if (ZSTD_isError(n)) {
		snprintf(why, why_len, "zstd frame does not decode: %s", ZSTD_getErrorName(n));
		return -EBADMSG;
	}
	if (n != dlen) {
		snprintf(why, why_len, "zstd frame decodes to %zu bytes, the record holds %zu", n, dlen);
		return -EBADMSG;
	}
	return 0;
}

#else /* !BGSNAP_HAVE_ZSTD */

struct codec_cctx {
	int unused;
};
struct codec_dctx {
	int unused;
};

int codec_available(int method)
{
	(void)method;
	return 0;
}

int codec_cctx_new(struct codec_cctx **out, int level, struct bgsnap_err *err)
{
	(void)level;
	*out = NULL;
	return err_set(err, -ENOTSUP, "compression: this bgsnap was built without libzstd");
}

void codec_cctx_free(struct codec_cctx *c)
{
	(void)c;
}

size_t codec_bound(size_t len)
{
	return len;
}

size_t codec_compress(struct codec_cctx *c, void *dst, size_t cap, const void *src, size_t len)
{
	(void)c, (void)dst, (void)cap, (void)src, (void)len;
	return 0;
}

void codec_dctx_free(struct codec_dctx *d)
{
	(void)d;
}

int codec_decompress(struct codec_dctx **dp, const void *src, size_t clen, void *dst, size_t dlen, char *why,
                     size_t why_len)
{
	(void)dp, (void)src, (void)clen, (void)dst, (void)dlen;
	snprintf(why, why_len, "compressed pages (zstd): this bgsnap was built without libzstd");
	return -ENOTSUP;
}

#endif

int bgsnap_compress_available(int method)
{
	if (method == BGSNAP_COMPRESS_ZSTD_AUTO)
		method = BGSNAP_COMPRESS_ZSTD;
	return method == BGSNAP_COMPRESS_NONE || codec_available(method);
}
