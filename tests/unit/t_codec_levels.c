/*
 * t_codec_levels - the zstd codec at the levels a snapshot may ask for:
 * the default (0), the fast ones (-1, -7), 1 and 3.  Each compresses
 * memory whose redundancy lies in its literals (letters from a 16-letter
 * alphabet, no repeated strings to match: about half its raw size once
 * Huffman-coded) to at most 0.6 of its size, as a chunk of 1024 pages and
 * as single pages (fault copies), and every frame decodes back to the
 * same bytes.  Fails if a fast level stores the literals raw (zstd's own
 * negative levels do: about 1.0 here), which would make the default's
 * files as large as uncompressed ones.  Also: random bytes stay within
 * codec_bound, levels outside zstd's range are refused with a message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "format/codec.h"
#include "format/format.h"
#include "testutil.h"

#define CHUNK_PAGES 1024u
#define CHUNK_BYTES ((size_t)CHUNK_PAGES * FMT_PAGE_SIZE)

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

/* One frame of src[0..len) through c, decoded back; its size. */
static size_t round_trip(struct codec_cctx *c, struct codec_dctx **d, uint8_t *frame, size_t cap,
                         const uint8_t *src, size_t len, uint8_t *back, int level)
{
	size_t n = codec_compress(c, frame, cap, src, len);
	CHECK(n > 0 && n <= codec_bound(len), "level %d: %zu bytes -> frame of %zu (bound %zu)", level, len, n,
	      codec_bound(len));
	char why[256];
	memset(back, 0xa5, len);
	CHECK_RC(codec_decompress(d, frame, n, back, len, why, sizeof why), 0, "level %d: decode: %s", level, why);
	CHECK(!memcmp(back, src, len), "level %d: %zu bytes decode to different bytes", level, len);
	return n;
}

int main(void)
{
	if (!codec_available(FMT_COMPRESS_ZSTD))
		tu_skip("this build has no zstd (libzstd-dev not found by pkg-config)");
	uint8_t *letters = malloc(CHUNK_BYTES), *noise = malloc(CHUNK_BYTES), *back = malloc(CHUNK_BYTES);
	size_t cap = codec_bound(CHUNK_BYTES);
	uint8_t *frame = malloc(cap);
	CHECK(letters && noise && back && frame, "out of memory");
	for (size_t i = 0; i < CHUNK_BYTES; i += 8) {
		uint64_t r = next();
		for (size_t k = 0; k < 8; k++)
			letters[i + k] = (uint8_t)('a' + (r >> (4 * k) & 15));
		memcpy(noise + i, &r, 8);
	}
	struct codec_dctx *d = NULL;
	static const int levels[] = { 0, -1, -7, 1, 3 };
	for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
		int level = levels[li];
		struct bgsnap_err err = { 0 };
		struct codec_cctx *c;
		CHECK_RC(codec_cctx_new(&c, level, &err), 0, "level %d: %s", level, err.msg);
		size_t whole = round_trip(c, &d, frame, cap, letters, CHUNK_BYTES, back, level);
		CHECK(whole <= CHUNK_BYTES / 10 * 6, "level %d: a chunk of 16-letter text stored in %zu of %zu bytes "
		      "(literals not coded?)", level, whole, CHUNK_BYTES);
		size_t pages = 0;
		for (size_t p = 0; p < 64; p++)
			pages += round_trip(c, &d, frame, cap, letters + p * FMT_PAGE_SIZE, FMT_PAGE_SIZE, back, level);
		CHECK(pages <= 64 * FMT_PAGE_SIZE / 10 * 6, "level %d: 64 single pages of 16-letter text stored in "
		      "%zu bytes", level, pages);
		round_trip(c, &d, frame, cap, noise, CHUNK_BYTES, back, level);
		printf("level %3d: 16-letter text %.3f of raw as a chunk, %.3f as single pages\n", level,
		       (double)whole / CHUNK_BYTES, (double)pages / (64.0 * FMT_PAGE_SIZE));
		codec_cctx_free(c);
	}
	static const int bad[] = { 23, -1000000 };
	for (size_t i = 0; i < 2; i++) {
		struct bgsnap_err err = { 0 };
		struct codec_cctx *c = (struct codec_cctx *)1;
		CHECK_RC(codec_cctx_new(&c, bad[i], &err), -EINVAL, "level %d", bad[i]);
		CHECK(!c && strstr(err.msg, "level"), "level %d: compressor %p, message '%s'", bad[i], (void *)c, err.msg);
	}
	codec_dctx_free(d);
	free(letters);
	free(noise);
	free(back);
	free(frame);
	printf("PASS\n");
	return 0;
}
