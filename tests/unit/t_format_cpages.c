/*
 * t_format_cpages - a compressed file (CPAGES records) read back through
 * every reader path: info (version 2, compress, CPAGES and raw-fallback
 * PAGES records, raw and stored bytes), read_region, read_page in and out
 * of order, verify, next() after rewind and as a stream through a pipe.
 * Text-like regions must compress; a random region must fall back to
 * PAGES records; zero pages stay ZERO records.  The same memory written
 * without compression must be a version 1 file without CPAGES.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "format/format.h"
#include "testutil.h"

static uint64_t walk(bgsnap_reader *r, const struct fg_spec *s)
{
	struct bgsnap_record rec;
	uint64_t pages = 0;
	int rc;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0 && rec.kind != BGSNAP_REC_END) {
		if (rec.kind == BGSNAP_REC_STATE)
			continue;
		const uint8_t *m = s->mem[rec.region] + rec.first_page * TU_PAGE;
		if (rec.kind == BGSNAP_REC_PAGES)
			CHECK(!memcmp(rec.data, m, rec.count * TU_PAGE), "record at %llu differs",
			      (unsigned long long)rec.offset);
		else
			for (size_t i = 0; i < rec.count * TU_PAGE; i++)
				CHECK(!m[i], "ZERO record at %llu covers a non-zero byte", (unsigned long long)rec.offset);
		pages += rec.count;
	}
	CHECK(rc > 0, "next failed: %s", bgsnap_reader_errmsg(r));
	return pages;
}

static void check_random(const char *path, const struct fg_spec *s, struct bgsnap_file_info *fi)
{
	char err[512];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	CHECK_RC(bgsnap_reader_info(r, fi, sizeof *fi), 0, "info");
	for (unsigned i = 0; i < s->nregions; i++) {
		size_t sz = s->pages[i] * TU_PAGE;
		uint8_t *dst = malloc(sz);
		memset(dst, 0xAA, sz);
		CHECK_RC(bgsnap_reader_read_region(r, i, dst, sz, 0), 0, "read_region: %s", bgsnap_reader_errmsg(r));
		CHECK(!memcmp(dst, s->mem[i], sz), "region %u differs", i);
		/* Backwards: every page from another chunk than the last one. */
		for (uint64_t p = s->pages[i]; p-- > 0;) {
			uint8_t pg[TU_PAGE];
			CHECK_RC(bgsnap_reader_read_page(r, i, p, pg), 0, "read_page: %s", bgsnap_reader_errmsg(r));
			CHECK(!memcmp(pg, s->mem[i] + p * TU_PAGE, TU_PAGE), "page %llu of region %u", (unsigned long long)p, i);
		}
		free(dst);
	}
	CHECK_RC(bgsnap_reader_verify(r), 0, "verify: %s", bgsnap_reader_errmsg(r));
	CHECK_RC(bgsnap_reader_rewind(r), 0, "rewind");
	uint64_t total = 0;
	for (unsigned i = 0; i < s->nregions; i++)
		total += s->pages[i];
	CHECK(walk(r, s) == total, "sequential walk");
	bgsnap_reader_close(r);
}

int main(void)
{
	if (!bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD))
		tu_skip("this build has no zstd (libzstd-dev not found by pkg-config)");
	struct fg_spec s;
	fg_default(&s);
	s.nregions = 3;
	s.pages[0] = 5;       /* text, one small chunk */
	s.pages[1] = 64;      /* random: stored as PAGES */
	s.pages[2] = 3000;    /* text, several full chunks and zero pages */
	s.zero_every = 7;
	s.max_run = 300;
	s.text_regions = 1u | 4u;
	s.compress = FMT_COMPRESS_ZSTD;
	fg_build(&s);
	char path[512], plain[512];
	snprintf(path, sizeof(path), "%s/z.bgs", tu_tmpdir());
	snprintf(plain, sizeof(plain), "%s/plain.bgs", tu_tmpdir());
	fg_write_path(&s, path);

	struct bgsnap_file_info fi;
	check_random(path, &s, &fi);
	CHECK(fi.version == 2 && fi.compress == BGSNAP_COMPRESS_ZSTD, "version %u compress %d", fi.version, fi.compress);
	CHECK(fi.cpage_records >= 3 && fi.page_records >= 1, "%llu CPAGES, %llu PAGES records: want chunks and a raw "
	      "fallback", (unsigned long long)fi.cpage_records, (unsigned long long)fi.page_records);
	CHECK(fi.raw_bytes == (fi.pages_total - fi.pages_zero) * TU_PAGE, "raw_bytes %llu",
	      (unsigned long long)fi.raw_bytes);
	/* Region 1 is random (64 pages stored raw); the text must shrink the rest. */
	CHECK(fi.stored_bytes < fi.raw_bytes / 2, "stored %llu of %llu raw bytes: text did not compress",
	      (unsigned long long)fi.stored_bytes, (unsigned long long)fi.raw_bytes);
	printf("compressed: %llu CPAGES + %llu PAGES records, %llu raw -> %llu stored bytes\n",
	       (unsigned long long)fi.cpage_records, (unsigned long long)fi.page_records,
	       (unsigned long long)fi.raw_bytes, (unsigned long long)fi.stored_bytes);

	/* The same memory without compression: version 1, no CPAGES. */
	s.compress = FMT_COMPRESS_NONE;
	fg_write_path(&s, plain);
	struct bgsnap_file_info pi;
	check_random(plain, &s, &pi);
	CHECK(pi.version == 1 && pi.compress == BGSNAP_COMPRESS_NONE && pi.cpage_records == 0, "plain file: version %u",
	      pi.version);
	CHECK(pi.stored_bytes == pi.raw_bytes + pi.page_records * 44, "plain stored %llu raw %llu",
	      (unsigned long long)pi.stored_bytes, (unsigned long long)pi.raw_bytes);
	s.compress = FMT_COMPRESS_ZSTD;

	/* Stream through a pipe from a forked writer. */
	pid_t pid;
	int sfd = fg_stream_start(&s, &pid);
	char err[512];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open_stream(&r, sfd, err, sizeof(err)), 0, "open_stream: %s", err);
	CHECK(walk(r, &s) == s.pages[0] + s.pages[1] + s.pages[2], "stream walk");
	struct bgsnap_file_info si;
	CHECK_RC(bgsnap_reader_info(r, &si, sizeof si), 0, "info");
	CHECK(si.stored_bytes == fi.stored_bytes && si.cpage_records == fi.cpage_records, "stream info: stored %llu",
	      (unsigned long long)si.stored_bytes);
	bgsnap_reader_close(r);
	fg_stream_end(sfd, pid);
	fg_free(&s);
	printf("ok: compressed file through every reader path\n");
	return 0;
}
