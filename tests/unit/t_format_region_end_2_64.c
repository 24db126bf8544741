/*
 * t_format_region_end_2_64 - the encoder, the reader and docs/FORMAT.md
 * agree on the top of the address space: a region whose last byte is
 * 2^64 - 1 (addr + size == 2^64) is written, opened, read, verified and
 * streamed; a region that would end beyond 2^64 is refused by both sides
 * ("beyond 2^64"), and so is a region that overlaps one ending at 2^64
 * (an end computed as addr + size wraps to 0 and hides such an overlap).
 * The reader's cases are files written by the encoder and then patched,
 * with every checksum recomputed, so only the rule under test can fail them.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/crc32c.h"
#include "format/format.h"
#include "format/le.h"
#include "sink/sink.h"
#include "fmtgen.h"
#include "testutil.h"

#define TOP_ADDR   (UINT64_MAX - 8192 + 1)     /* 2 pages ending at 2^64   */
#define BELOW_ADDR (UINT64_MAX - 16384 + 1)    /* 2 pages just before them */

static uint8_t mem[4][TU_PAGE];

/* Writes regions `r` (each 2 pages, content from mem) to `path`; returns
 * fmtw_begin's result (the rest must succeed when it does). */
static int write_file(const char *path, const struct fmt_region *r, uint32_t n, struct bgsnap_err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	struct sink s;
	struct fmt_writer w;
	memset(&w, 0, sizeof(w));
	err_clear(e);
	CHECK_RC(sink_open_fd(&s, fd, e), 0, "sink_open_fd: %s", e->msg);
	int rc = fmtw_begin(&w, &(struct fmt_out){ &s, sink_out_writev, sink_out_flush, SINK_IOV_MAX, NULL }, r, n, e);
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		CHECK_RC(fmtw_pages(&w, i, 0, 2, mem[2 * i]), 0, "fmtw_pages region %u: %s", i, e->msg);
	struct fmt_meta meta = { BGSNAP_METHOD_STOP, 1, 2 };
	if (rc == 0)
		CHECK_RC(fmtw_finish(&w, &meta), 0, "fmtw_finish: %s", e->msg);
	fmtw_free(&w);
	sink_abort(&s);
	close(fd);
	return rc;
}

/* The header record starts after the magic; region entry i's addr field. */
static size_t addr_field(const uint8_t *b, unsigned i)
{
	size_t q = FMT_MAGIC_LEN + FMT_REC_HDR_LEN + FMT_HEADER_FIXED_LEN;
	for (unsigned k = 0; k < i; k++)
		q += FMT_REGION_FIXED_LEN + le32_load(b + q);
	return q + 4 + le32_load(b + q);
}

/* Recomputes the header record's crc, the whole-file crc and the trailer's. */
static void fix_crcs(uint8_t *b, size_t len)
{
	size_t off = FMT_MAGIC_LEN, span = FMT_REC_HDR_LEN + le64_load(b + off + 8) + FMT_REC_CRC_LEN;
	size_t toff = len - FMT_TRAILER_REC_LEN;
	le32_store(b + off + span - 4, crc32c(0, b + off, span - 4));
	le32_store(b + toff + FMT_REC_HDR_LEN + 48, crc32c(0, b, toff));
	le32_store(b + len - 4, crc32c(0, b + toff, FMT_TRAILER_REC_LEN - 4));
}

static void reader_accepts(const char *path)
{
	char msg[512];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, msg, sizeof(msg)), 0, "a region ending at 2^64 refused: %s", msg);
	struct bgsnap_region_info ri;
	CHECK_RC(bgsnap_reader_region(r, 0, &ri, sizeof(ri)), 0, "region 0");
	CHECK(ri.addr == TOP_ADDR && ri.size == 8192, "region 0 reads back as 0x%llx+%llu",
	      (unsigned long long)ri.addr, (unsigned long long)ri.size);
	static uint8_t page[TU_PAGE];
	for (unsigned p = 0; p < 2; p++) {
		CHECK_RC(bgsnap_reader_read_page(r, 0, p, page), 0, "read_page %u: %s", p, bgsnap_reader_errmsg(r));
		CHECK(memcmp(page, mem[p], TU_PAGE) == 0, "page %u of the top region differs", p);
	}
	CHECK_RC(bgsnap_reader_verify(r), 0, "verify: %s", bgsnap_reader_errmsg(r));
	bgsnap_reader_close(r);

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", path);
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, msg, sizeof(msg)), 0, "stream open refused: %s", msg);
	struct bgsnap_record rec;
	int k, pages = 0;
	while ((k = bgsnap_reader_next(r, &rec)) == 1)
		if (rec.kind == BGSNAP_REC_PAGES || rec.kind == BGSNAP_REC_ZERO)
			pages += (int)rec.count;
	CHECK(k == 0, "stream: %s", bgsnap_reader_errmsg(r));
	CHECK(pages == 4, "stream: %d pages, expected 4", pages);
	bgsnap_reader_close(r);
	close(fd);
}

/* Patches the good file (region i's addr := addr) and expects the reader
 * to refuse it with a message containing `want`. */
static void reader_refuses(const char *good, const char *bad, unsigned i, uint64_t addr, const char *want)
{
	size_t len;
	uint8_t *b = fg_read_file(good, &len);
	le64_store(b + addr_field(b, i), addr);
	fix_crcs(b, len);
	fg_write_file(bad, b, len);
	free(b);
	char msg[512] = "";
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, bad, msg, sizeof(msg)), -EBADMSG, "region %u at 0x%llx accepted", i,
	         (unsigned long long)addr);
	CHECK(strstr(msg, want), "region %u at 0x%llx: message '%s' lacks '%s'", i, (unsigned long long)addr, msg,
	      want);
}

int main(void)
{
	for (unsigned i = 0; i < 4; i++)
		memset(mem[i], 0x41 + (int)i, TU_PAGE);
	char good[600], bad[600];
	snprintf(good, sizeof(good), "%s/top.bgs", tu_tmpdir());
	snprintf(bad, sizeof(bad), "%s/bad.bgs", tu_tmpdir());
	struct bgsnap_err e;

	/* The encoder: ending at 2^64 is fine, beyond is not. */
	struct fmt_region ok[] = { { "top", TOP_ADDR, 8192 }, { "below", BELOW_ADDR, 8192 } };
	CHECK_RC(write_file(good, ok, 2, &e), 0, "encoder refused a region ending at 2^64: %s", e.msg);
	struct fmt_region beyond[] = { { "top", TOP_ADDR + 4096, 8192 } };
	CHECK_RC(write_file(bad, beyond, 1, &e), -EINVAL, "encoder accepted a region ending at 2^64 + 4096");
	CHECK(strstr(e.msg, "beyond 2^64"), "encoder: message '%s'", e.msg);
	struct fmt_region overlap[] = { { "top", TOP_ADDR, 8192 }, { "last", UINT64_MAX - 4095, 4096 } };
	CHECK_RC(write_file(bad, overlap, 2, &e), -EINVAL, "encoder accepted regions overlapping at 2^64 - 4096");
	CHECK(strstr(e.msg, "overlap"), "encoder: message '%s'", e.msg);

	/* The reader: the same rules on the same bytes. */
	reader_accepts(good);
	reader_refuses(good, bad, 0, TOP_ADDR + 4096, "beyond 2^64");
	reader_refuses(good, bad, 1, TOP_ADDR, "overlap");
	reader_refuses(good, bad, 1, UINT64_MAX - 4095, "beyond 2^64");

	unlink(good);
	unlink(bad);
	printf("t_format_region_end_2_64: ok\n");
	return 0;
}
