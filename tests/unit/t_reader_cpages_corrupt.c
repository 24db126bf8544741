/*
 * t_reader_cpages_corrupt - crafted CPAGES records, every checksum right,
 * one defect each: a frame that is not zstd, one truncated, one that
 * decodes to fewer pages than the record says, one without a content size,
 * a decompression bomb (a few bytes declaring 64 MiB), two frames, trailing
 * bytes after the frame, a skippable frame, a frame as large as the raw
 * pages, too many pages, an unknown codec, CPAGES in a version 1 file, a
 * compressed length past the end of the file, and a checksum mismatch.
 * Each must be rejected by verify (random access and stream) with the
 * record's offset; where the index itself is sound, eager restore must
 * fail without writing the record's pages, and lazy restore must fail and
 * poison them.  A sound record is accepted and restored, as a control.
 * timeout: 120
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "format/crc32c.h"
#include "format/format.h"
#include "format/le.h"
#include "testutil.h"

#ifdef BGSNAP_HAVE_ZSTD
#include <zstd.h>
#define HAVE_ZSTD_H 1
#endif

#ifdef HAVE_ZSTD_H
static char path[512];
static uint8_t *fb;      /* the crafted file */
static size_t flen;
static const size_t REC_OFF = 8;   /* set after the header: see craft() */
static uint64_t cp_off;            /* offset of the CPAGES record */

static size_t rec(size_t at, uint32_t type, const void *payload, size_t plen)
{
	le32_store(fb + at, type);
	le32_store(fb + at + 4, 0);
	le64_store(fb + at + 8, plen);
	memcpy(fb + at + 16, payload, plen);
	le32_store(fb + at + 16 + plen, crc32c(0, fb + at, 16 + plen));
	return at + 20 + plen;
}

/* A file of one region "a" of `count` pages held by one CPAGES record with
 * `frame` (clen bytes) and `codec`; `version` in the header.  `plen_add`
 * lies about the payload length (the record's crc still covers the bytes
 * written). */
static void craft(uint32_t version, uint64_t count, const void *frame, size_t clen, uint32_t codec)
{
	free(fb);
	fb = calloc(1, 4096 + clen + 1024);
	CHECK(fb, "calloc");
	memcpy(fb, FMT_MAGIC, 8);
	uint8_t h[64];
	le32_store(h, version);
	le32_store(h + 4, 4096);
	le32_store(h + 8, 1);
	le32_store(h + 12, 0);
	le32_store(h + 16, 1);
	h[20] = 'a';
	le64_store(h + 21, 0x100000000ull);
	le64_store(h + 29, count * 4096);
	le32_store(h + 37, 0);
	size_t at = rec(REC_OFF, FMT_REC_HEADER, h, 41);
	cp_off = at;
	uint8_t *p = malloc(24 + clen);
	le32_store(p, 0);
	le32_store(p + 4, codec);
	le64_store(p + 8, 0);
	le64_store(p + 16, count);
	memcpy(p + 24, frame, clen);
	at = rec(at, FMT_REC_CPAGES, p, 24 + clen);
	free(p);
	uint8_t ix[8 + 32];
	le64_store(ix, 1);
	le32_store(ix + 8, FMT_REC_CPAGES);
	le32_store(ix + 12, 0);
	le64_store(ix + 16, 0);
	le64_store(ix + 24, count);
	le64_store(ix + 32, cp_off);
	size_t io = at;
	at = rec(at, FMT_REC_INDEX, ix, sizeof(ix));
	uint8_t t[64] = { 0 };
	le64_store(t, io);
	le64_store(t + 8, count);
	le32_store(t + 28, 5);
	le32_store(t + 48, crc32c(0, fb, at));
	memcpy(t + 56, FMT_END_MAGIC, 8);
	flen = rec(at, FMT_REC_TRAILER, t, 64);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0 && write(fd, fb, flen) == (ssize_t)flen, "write %s", path);
	close(fd);
}

/* Rewrites the crafted file with the record crc left wrong (byte `i` of
 * the frame flipped after the checksums were computed). */
static void flip_frame_byte(size_t i)
{
	fb[cp_off + 40 + i] ^= 0x40;
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, fb, flen) == (ssize_t)flen, "rewrite");
	close(fd);
}

/* 0 if both ways in accept the file; else the messages in m1 (random) and m2 (stream). */
static int check_file(char *m1, char *m2, size_t mlen)
{
	bgsnap_reader *r;
	m1[0] = m2[0] = 0;
	int rc = bgsnap_reader_open(&r, path, m1, mlen);
	if (rc == 0) {
		if ((rc = bgsnap_reader_verify(r)) < 0)
			snprintf(m1, mlen, "%s", bgsnap_reader_errmsg(r));
		bgsnap_reader_close(r);
	}
	int bad1 = rc < 0;
	int fd = open(path, O_RDONLY);
	rc = bgsnap_reader_open_stream(&r, fd, m2, mlen);
	if (rc == 0) {
		if ((rc = bgsnap_reader_verify(r)) < 0)
			snprintf(m2, mlen, "%s", bgsnap_reader_errmsg(r));
		bgsnap_reader_close(r);
	}
	close(fd);
	CHECK(bad1 == (rc < 0), "random access and stream disagree: '%s' | '%s'", m1, m2);
	return bad1 ? -EBADMSG : 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* A record whose index entry is sound: eager restore fails and writes none
 * of its pages; lazy restore fails and poisons them; read_page fails. */
static void restore_refuses(const char *what, uint64_t count)
{
	char err[600];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "%s: open: %s", what, err);
	uint8_t pg[4096];
	CHECK(bgsnap_reader_read_page(r, 0, 0, pg) == -EBADMSG, "%s: read_page accepted the record", what);
	size_t len = count * 4096;
	uint8_t *dst = tu_map_anon(len);
	struct bgsnap_restore_target t = { 0, dst, len };
	CHECK(bgsnap_restore_reader(r, &t, 1, 2, err, sizeof(err)) < 0, "%s: eager restore succeeded", what);
	CHECK(strstr(err, "offset"), "%s: eager restore message without offset: %s", what, err);
	CHECK(all_zero(dst, len), "%s: eager restore wrote pages of a bad record", what);
	munmap(dst, len);
	dst = tu_map_anon(len);
	t.dst = dst;
	bgsnap_lazy *l;
	int rc = bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err));
	if (rc == -ENOSYS || rc == -EPERM || rc == -ENOTSUP) {
		printf("  (lazy restore unavailable here: %s)\n", err);
	} else {
		CHECK_RC(rc, 0, "%s: lazy start: %s", what, err);
		CHECK(bgsnap_lazy_wait(l) < 0, "%s: lazy restore succeeded", what);
		struct bgsnap_lazy_stats st;
		bgsnap_lazy_get_stats(l, &st, sizeof st);
		CHECK(st.pages_failed == count, "%s: lazy restore poisoned %llu of %llu pages", what,
		      (unsigned long long)st.pages_failed, (unsigned long long)count);
		bgsnap_lazy_free(l);
	}
	munmap(dst, len);
	bgsnap_reader_close(r);
}

static void expect_bad(const char *what, const char *want, int index_sound, uint64_t count)
{
	char m1[600], m2[600], off[64];
	CHECK(check_file(m1, m2, sizeof(m1)) < 0, "%s: accepted", what);
	snprintf(off, sizeof(off), "offset %llu", (unsigned long long)cp_off);
	for (int i = 0; i < 2; i++) {
		const char *m = i ? m2 : m1;
		CHECK(strstr(m, want), "%s: message '%s' lacks '%s'", what, m, want);
		CHECK(strstr(m, "offset"), "%s: message '%s' names no offset", what, m);
	}
	CHECK(strstr(m1, off) || strstr(m2, off), "%s: neither '%s' nor '%s' names %s", what, m1, m2, off);
	printf("  %-22s %s\n", what, m1);
	if (index_sound)
		restore_refuses(what, count);
}

static size_t zc(void *dst, size_t cap, const void *src, size_t len, int content_size)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size);
	size_t n = ZSTD_compress2(c, dst, cap, src, len);
	ZSTD_freeCCtx(c);
	CHECK(!ZSTD_isError(n), "ZSTD_compress2");
	return n;
}

int main(void)
{
	if (!bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD))
		tu_skip("this build has no zstd (libzstd-dev not found by pkg-config)");
	snprintf(path, sizeof(path), "%s/c.bgs", tu_tmpdir());
	enum { N = 4 };
	static uint8_t pages[N * 4096], f[1 << 16], g[1 << 16];
	memset(pages, 0, sizeof(pages));
	tu_fill(pages, sizeof(pages), 7, 0);
	fg_textify(pages, N);
	size_t n = zc(f, sizeof(f), pages, sizeof(pages), 1);

	char m1[600], m2[600];
	craft(2, N, f, n, FMT_CODEC_ZSTD);
	CHECK_RC(check_file(m1, m2, sizeof(m1)), 0, "a sound CPAGES record is rejected: %s | %s", m1, m2);
	{
		char err[600];
		uint8_t *dst = tu_map_anon(sizeof(pages));
		struct bgsnap_restore_target t = { 0, dst, sizeof(pages) };
		CHECK_RC(bgsnap_restore(path, &t, 1, 1, err, sizeof(err)), 0, "restore: %s", err);
		CHECK(!memcmp(dst, pages, sizeof(pages)), "restored content differs");
		munmap(dst, sizeof(pages));
	}
	printf("ok: a sound CPAGES record (%zu bytes for %u pages) reads and restores\n", n, N);

	memset(g, 0xAA, n);
	craft(2, N, g, n, FMT_CODEC_ZSTD);
	expect_bad("not a frame", "not a zstd frame", 1, N);

	craft(2, N, f, n - 5, FMT_CODEC_ZSTD);
	expect_bad("truncated frame", "zstd frame", 1, N);

	size_t k = zc(g, sizeof(g), pages, (N - 1) * 4096, 1);
	craft(2, N, g, k, FMT_CODEC_ZSTD);
	expect_bad("decodes short", "declares 12288 bytes", 1, N);

	k = zc(g, sizeof(g), pages, sizeof(pages), 0);
	craft(2, N, g, k, FMT_CODEC_ZSTD);
	expect_bad("no content size", "no content size", 1, N);

	uint8_t *big = calloc(1, 64u << 20);
	CHECK(big, "calloc");
	k = zc(g, sizeof(g), big, 64u << 20, 1);
	free(big);
	craft(2, N, g, k, FMT_CODEC_ZSTD);
	expect_bad("bomb (64 MiB)", "declares 67108864 bytes", 1, N);

	k = zc(g, sizeof(g), pages, 2 * 4096, 1);
	k += zc(g + k, sizeof(g) - k, pages + 2 * 4096, 2 * 4096, 1);
	craft(2, N, g, k, FMT_CODEC_ZSTD);
	expect_bad("two frames", "declares 8192 bytes", 1, N);

	memcpy(g, f, n);
	memset(g + n, 0, 7);
	craft(2, N, g, n + 7, FMT_CODEC_ZSTD);
	expect_bad("bytes after the frame", "spans", 1, N);

	/* A skippable frame: magic 0x184D2A50, length, bytes. */
	le32_store(g, 0x184D2A50u);
	le32_store(g + 4, 8);
	memset(g + 8, 1, 8);
	craft(2, N, g, 16, FMT_CODEC_ZSTD);
	expect_bad("skippable frame", "zstd frame", 1, N);

	craft(2, 1, pages, 4096, FMT_CODEC_ZSTD);
	expect_bad("frame as large as raw", "CPAGES", 0, 1);

	craft(2, N, f, n, 2);
	expect_bad("unknown codec", "CPAGES", 0, N);

	craft(1, N, f, n, FMT_CODEC_ZSTD);
	expect_bad("CPAGES in version 1", "unsupported encoding", 0, N);

	/* 1025 pages: above the chunk limit (the frame does not matter). */
	craft(2, FMT_MAX_CPAGES + 1, f, n, FMT_CODEC_ZSTD);
	expect_bad("1025 pages", "CPAGES", 0, FMT_MAX_CPAGES + 1);

	/* The compressed length points past the end of the file. */
	craft(2, N, f, n, FMT_CODEC_ZSTD);
	le64_store(fb + cp_off + 8, 24 + n + 100000);
	le32_store(fb + cp_off + 16 + 24 + n, crc32c(0, fb + cp_off, 16 + 24 + n));
	{
		int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		CHECK(fd >= 0 && write(fd, fb, flen) == (ssize_t)flen, "rewrite");
		close(fd);
	}
	expect_bad("length past the end", "offset", 0, N);

	craft(2, N, f, n, FMT_CODEC_ZSTD);
	flip_frame_byte(n / 2);
	expect_bad("checksum mismatch", "checksum mismatch", 0, N);
	/* Random access opens (the index is sound) but never decodes it. */
	restore_refuses("checksum mismatch", N);

	free(fb);
	printf("ok: every damaged CPAGES record rejected with its offset, never restored\n");
	return 0;
}
#else
int main(void)
{
	tu_skip("this build has no zstd (libzstd-dev not found by pkg-config)");
}
#endif
