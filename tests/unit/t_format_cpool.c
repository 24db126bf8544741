/*
 * t_format_cpool - the compressor pool behind the encoder: a file
 * compressed by 1, 3 or 8 threads holds the records the writer alone
 * writes (the same length: every chunk and every single page becomes the
 * same record, only their order varies), verifies and reads back page
 * for page.  An output that
 * fails part-way while chunks are in the workers' hands fails the writer
 * with the output's error, sticky on every later call, and fmtw_free
 * stops and joins the workers (no hang, no leak under ASan; no race under
 * TSan).
 * tags: concurrency
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/format.h"
#include "testutil.h"

#define PAGES0 5000u   /* several full chunks, zero runs, a random stretch */
#define PAGES1 300u    /* the target of single-page (fault copy) writes    */

struct memout {
	uint8_t *buf;
	size_t len, cap;
	size_t fail_after;   /* 0: never */
};

static int mo_writev(void *ctx, const struct iovec *iov, int n, struct bgsnap_err *err)
{
	struct memout *m = ctx;
	for (int i = 0; i < n; i++) {
		if (m->fail_after && m->len + iov[i].iov_len > m->fail_after)
			return err_set(err, -ENOSPC, "test output: full after %zu bytes", m->fail_after);
		if (m->len + iov[i].iov_len > m->cap) {
			m->cap = (m->len + iov[i].iov_len) * 2;
			m->buf = realloc(m->buf, m->cap);
			CHECK(m->buf, "out of memory");
		}
		memcpy(m->buf + m->len, iov[i].iov_base, iov[i].iov_len);
		m->len += iov[i].iov_len;
	}
	return 0;
}

static int mo_flush(void *ctx, struct bgsnap_err *err)
{
	(void)ctx;
	(void)err;
	return 0;
}

static uint8_t *mem0, *mem1;

static void fill(void)
{
	static const char *words[] = { "alpha ", "beta ", "gamma ", "delta ", "snapshot ", "page ", "zstd " };
	mem0 = malloc((size_t)PAGES0 * TU_PAGE);
	mem1 = malloc((size_t)PAGES1 * TU_PAGE);
	CHECK(mem0 && mem1, "out of memory");
	uint64_t x = 88172645463325252ull;
	for (size_t off = 0; off < (size_t)PAGES0 * TU_PAGE;) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t pg = off / TU_PAGE;
		if (pg % 700 >= 650) {                 /* zero runs */
			mem0[off++] = 0;
		} else if (pg >= 3000 && pg < 3100) {  /* incompressible: stored raw */
			mem0[off++] = (uint8_t)x;
		} else {
			const char *w = words[x % 7];
			for (; *w && off < (size_t)PAGES0 * TU_PAGE; w++)
				mem0[off++] = (uint8_t)*w;
		}
	}
	for (size_t i = 0; i < (size_t)PAGES1 * TU_PAGE; i++)
		mem1[i] = (uint8_t)(i / 37 % 251);
}

/* The whole file through `m`; the first error, or 0. */
static int encode(struct memout *m, unsigned threads)
{
	struct bgsnap_err err = { 0 };
	struct fmt_region regs[2] = {
		{ .name = "text", .addr = 0x10000000, .size = (uint64_t)PAGES0 * TU_PAGE },
		{ .name = "faults", .addr = 0x80000000, .size = (uint64_t)PAGES1 * TU_PAGE },
	};
	struct fmt_writer w;
	struct fmt_out out = { m, mo_writev, mo_flush, 64, NULL };
	struct fmt_codec codec = { .method = FMT_COMPRESS_ZSTD, .level = 1, .threads = threads };
	int rc = fmtw_begin_codec(&w, &out, regs, 2, &codec, &err);
	uint64_t next1 = 0;
	/* Sweep steps of 100 pages interleaved with single pages, as the
	 * writer drains fault copies between its sweep steps. */
	for (uint64_t p = 0; rc == 0 && p < PAGES0; p += 100) {
		rc = fmtw_pages(&w, 0, p, 100, mem0 + p * TU_PAGE);
		for (int k = 0; rc == 0 && k < 5 && next1 < PAGES1; k++, next1++) {
			struct fmt_page_ref ref = { .region = 1, .page = next1, .data = mem1 + next1 * TU_PAGE };
			rc = fmtw_page_list(&w, &ref, 1);
		}
	}
	if (rc == 0)
		rc = fmtw_pages(&w, 1, next1, PAGES1 - next1, mem1 + next1 * TU_PAGE);
	if (rc == 0)
		rc = fmtw_finish(&w, NULL);
	if (rc) {
		CHECK(err.code == rc && err.msg[0], "error %d without its message (code %d)", rc, err.code);
		/* Sticky: every later call says the same. */
		CHECK_RC(fmtw_pages(&w, 0, 0, 1, mem0), rc, "call after the failure");
		CHECK_RC(fmtw_finish(&w, NULL), rc, "finish after the failure");
	}
	fmtw_free(&w);
	return rc;
}

static void check_file(const struct memout *m)
{
	char path[] = "/tmp/t_format_cpool.XXXXXX", err[512];
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	CHECK(write(fd, m->buf, m->len) == (ssize_t)m->len, "write");
	close(fd);
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	unlink(path);
	CHECK_RC(bgsnap_reader_verify(r), 0, "verify: %s", bgsnap_reader_errmsg(r));
	uint8_t *back = malloc((size_t)PAGES0 * TU_PAGE);
	CHECK_RC(bgsnap_reader_read_region(r, 0, back, (size_t)PAGES0 * TU_PAGE, 0), 0, "read: %s",
	         bgsnap_reader_errmsg(r));
	CHECK(!memcmp(back, mem0, (size_t)PAGES0 * TU_PAGE), "region 0 reads back different");
	CHECK_RC(bgsnap_reader_read_region(r, 1, back, (size_t)PAGES1 * TU_PAGE, 0), 0, "read: %s",
	         bgsnap_reader_errmsg(r));
	CHECK(!memcmp(back, mem1, (size_t)PAGES1 * TU_PAGE), "region 1 reads back different");
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "info");
	CHECK(fi.cpage_records >= 3, "only %llu CPAGES records", (unsigned long long)fi.cpage_records);
	free(back);
	bgsnap_reader_close(r);
}

int main(void)
{
	if (!bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD))
		tu_skip("this build has no zstd (libzstd-dev not found by pkg-config)");
	fill();
	struct memout ref = { 0 };
	CHECK_RC(encode(&ref, 0), 0, "writer-only compression");
	CHECK(ref.len < (size_t)(PAGES0 + PAGES1) * TU_PAGE / 2, "file of %zu bytes did not compress", ref.len);
	check_file(&ref);
	static const unsigned threads[] = { 1, 3, 8 };
	for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
		struct memout m = { 0 };
		CHECK_RC(encode(&m, threads[i]), 0, "%u threads", threads[i]);
		CHECK(m.len == ref.len, "%u threads: %zu bytes, not the %zu bytes the writer alone wrote", threads[i],
		      m.len, ref.len);
		check_file(&m);
		free(m.buf);
	}
	/* Fail at the header, inside the sweep (chunks in flight), near the end. */
	size_t cuts[] = { 100, ref.len / 4, ref.len / 2, ref.len - 200 };
	for (size_t t = 0; t < 2; t++)
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			struct memout m = { .fail_after = cuts[i] };
			unsigned th = t ? 3 : 0;
			CHECK_RC(encode(&m, th), -ENOSPC, "%u threads, output full after %zu bytes", th, cuts[i]);
			free(m.buf);
		}
	free(ref.buf);
	free(mem0);
	free(mem1);
	printf("PASS\n");
	return 0;
}
