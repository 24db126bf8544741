/*
 * codec.h - the page-data codec behind CPAGES records (zstd), the one
 * place that calls the compression library.  Built without libzstd
 * (BGSNAP_HAVE_ZSTD undefined), every call fails with -ENOTSUP and a
 * message, and the rest of the library works on uncompressed files.
 */
#ifndef BGSNAP_CODEC_H
#define BGSNAP_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* 1 if this build can compress and decompress with `method`
 * (enum fmt_compress), else 0. */
int codec_available(int method);

/* A compressor whose memory is allocated once, at creation: compressing
 * never allocates (a fork child compresses too). */
struct codec_cctx;
int codec_cctx_new(struct codec_cctx **out, int level, struct bgsnap_err *err);
void codec_cctx_free(struct codec_cctx *c);
/* Bytes a frame of `len` input bytes may take at worst. */
size_t codec_bound(size_t len);
/* One frame holding src[0..len), its content size recorded, into dst
 * (cap >= codec_bound(len)).  Returns its size, or 0 if the codec failed
 * (the caller then stores the data raw). */
size_t codec_compress(struct codec_cctx *c, void *dst, size_t cap, const void *src, size_t len);

/* A decompressor, created on first use; free with codec_dctx_free. */
struct codec_dctx;
void codec_dctx_free(struct codec_dctx *d);
/*
 * Decodes `src` (clen bytes), which must be exactly one frame whose
 * declared content size is exactly `dlen`, into dst[0..dlen).  Never writes
 * past dst + dlen, whatever src says.  0, or -EBADMSG / -ENOMEM / -ENOTSUP
 * with the reason (no offset: the caller adds it) in why[0..why_len).
 */
int codec_decompress(struct codec_dctx **d, const void *src, size_t clen, void *dst, size_t dlen, char *why,
                     size_t why_len);

#endif
