/*
 * t_format_adapt - the adaptive compressing writer (BGSNAP_COMPRESS_ZSTD_AUTO).
 * First the choice alone (fmt_adapt_choose, no clock): a chunk is
 * compressed to measure when nothing is measured, every 64th chunk left
 * raw, never when recent chunks did not shrink; with compressor threads
 * only into a free buffer, when a rate limit is in force or the
 * destination is slower than the compressors; the writer waits for a
 * buffer only when compressing on its own CPU (half of it) beats writing
 * raw.  Then a file from the real encoder whose
 * destination says slow and fast by turns (tests/unit/fmtgen.c): it must
 * hold both CPAGES and raw PAGES records of text-like memory, count them
 * as chunks compressed and raw, and read back page for page (read_region,
 * read_page, verify, eager restore, and next() as a stream).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "format/format.h"
#include "format/format_adapt.h"
#include "testutil.h"

#define MB 1000000ull

static const char *name(int c)
{
	return c == FMT_ADAPT_RAW ? "raw" : c == FMT_ADAPT_COMPRESS ? "compress" : "compress-wait";
}

static void want(const struct fmt_adapt_in *in, int expect, const char *what)
{
	int got = fmt_adapt_choose(in);
	CHECK(got == expect, "%s: %s, expected %s (dest %llu, limit %llu, comp %llu, ratio %u, threads %u, "
	      "free %d, streak %u)", what, name(got), name(expect), (unsigned long long)in->dest_rate,
	      (unsigned long long)in->max_rate, (unsigned long long)in->comp_rate,
	      in->ratio_permille, in->threads, in->slot_free, in->raw_streak);
}

static void choices(void)
{
	/* A fast disk (600 MB/s), one compressor thread at 400 MB/s of CPU,
	 * text-like content (0.32): the baseline is raw. */
	const struct fmt_adapt_in base = { .dest_rate = 600 * MB, .comp_rate = 400 * MB, .ratio_permille = 320,
		                           .threads = 1, .slot_free = 1 };
	struct fmt_adapt_in in = base;
	want(&in, FMT_ADAPT_RAW, "a disk faster than the compressor");
	in.slot_free = 0;
	want(&in, FMT_ADAPT_RAW, "the same, no buffer free");
	in = base;
	in.max_rate = 300 * MB;
	want(&in, FMT_ADAPT_COMPRESS, "300 MB/s limit, a buffer free");
	in.slot_free = 0;
	want(&in, FMT_ADAPT_RAW, "300 MB/s limit, no buffer free: the writer does not wait");
	in.max_rate = 100 * MB;
	want(&in, FMT_ADAPT_COMPRESS_WAIT, "100 MB/s limit: compressing on the writer's CPU beats writing raw");
	in = base;
	in.dest_rate = 50 * MB;
	want(&in, FMT_ADAPT_COMPRESS_WAIT, "a 50 MB/s pipe");
	in.dest_rate = 300 * MB;
	want(&in, FMT_ADAPT_COMPRESS, "a 300 MB/s synchronous destination, slower than the compressor");
	in.slot_free = 0;
	want(&in, FMT_ADAPT_RAW, "the same without a free buffer");
	in = base;
	in.dest_rate = 0;
	want(&in, FMT_ADAPT_RAW, "destination not measured yet, nothing behind");
	/* Measuring. */
	in = base;
	in.comp_rate = 0, in.ratio_permille = 0;
	want(&in, FMT_ADAPT_COMPRESS, "compressor never measured");
	in.slot_free = 0;
	want(&in, FMT_ADAPT_RAW, "compressor never measured, no buffer free");
	in = base;
	in.raw_streak = FMT_ADAPT_PROBE_EVERY - 1;
	want(&in, FMT_ADAPT_RAW, "63 chunks raw in a row");
	in.raw_streak = FMT_ADAPT_PROBE_EVERY;
	want(&in, FMT_ADAPT_COMPRESS, "64 chunks raw in a row: measure again");
	/* Incompressible content: raw even where compressing would pay. */
	in = base;
	in.ratio_permille = FMT_ADAPT_MAX_PERMILLE;
	in.max_rate = 10 * MB;
	want(&in, FMT_ADAPT_RAW, "recent chunks did not shrink");
	/* No threads (a fork child): only where it pays on the writer's CPU. */
	in = base;
	in.threads = 0;
	want(&in, FMT_ADAPT_RAW, "no threads, a 600 MB/s disk");
	in.max_rate = 300 * MB;
	want(&in, FMT_ADAPT_RAW, "no threads, 300 MB/s limit");
	in.max_rate = 100 * MB;
	want(&in, FMT_ADAPT_COMPRESS_WAIT, "no threads, 100 MB/s limit");
	in.slot_free = 0;
	want(&in, FMT_ADAPT_COMPRESS_WAIT, "no threads: the writer compresses, buffers or not");
	/* A limit above what the disk takes: the disk's rate counts. */
	in = base;
	in.dest_rate = 40 * MB;
	in.max_rate = 1000 * MB;
	want(&in, FMT_ADAPT_COMPRESS_WAIT, "a 1 GB/s limit on a 40 MB/s disk");
}

static void same_pages(bgsnap_reader *r, const struct fg_spec *s)
{
	for (unsigned i = 0; i < s->nregions; i++) {
		size_t sz = (size_t)s->pages[i] * TU_PAGE;
		uint8_t *dst = malloc(sz);
		CHECK(dst, "out of memory");
		CHECK_RC(bgsnap_reader_read_region(r, i, dst, sz, 0), 0, "read_region %u: %s", i, bgsnap_reader_errmsg(r));
		CHECK(!memcmp(dst, s->mem[i], sz), "region %u reads back different", i);
		for (uint64_t p = 0; p < s->pages[i]; p += 37) {
			CHECK_RC(bgsnap_reader_read_page(r, i, p, dst), 0, "read_page: %s", bgsnap_reader_errmsg(r));
			CHECK(!memcmp(dst, s->mem[i] + p * TU_PAGE, TU_PAGE), "region %u page %llu differs", i,
			      (unsigned long long)p);
		}
		free(dst);
	}
}

static void mixed_file(void)
{
	struct fg_spec s;
	fg_default(&s);
	s.nregions = 3;
	s.pages[0] = 5;
	s.pages[1] = 700;
	s.pages[2] = 3000;
	s.zero_every = 11;
	s.max_run = 200;
	s.text_regions = ~0u;
	s.compress = FMT_COMPRESS_ZSTD;
	s.adaptive_mix = 1;
	uint64_t chunks[2] = { 0, 0 };
	s.chunks = chunks;
	fg_build(&s);
	char path[512];
	snprintf(path, sizeof(path), "%s/mix.bgs", tu_tmpdir());
	fg_write_path(&s, path);
	CHECK(chunks[0] > 0 && chunks[1] > 0, "chunks: %llu compressed, %llu raw: want both",
	      (unsigned long long)chunks[0], (unsigned long long)chunks[1]);

	char err[256];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "info");
	CHECK(fi.version == 2 && fi.compress == BGSNAP_COMPRESS_ZSTD, "version %u compress %d", fi.version, fi.compress);
	CHECK(fi.cpage_records == chunks[0], "%llu CPAGES records for %llu chunks compressed",
	      (unsigned long long)fi.cpage_records, (unsigned long long)chunks[0]);
	CHECK(fi.page_records >= chunks[1], "%llu PAGES records for %llu chunks raw", (unsigned long long)fi.page_records,
	      (unsigned long long)chunks[1]);
	CHECK(fi.stored_bytes < fi.raw_bytes, "stored %llu of %llu raw bytes", (unsigned long long)fi.stored_bytes,
	      (unsigned long long)fi.raw_bytes);
	same_pages(r, &s);
	CHECK_RC(bgsnap_reader_verify(r), 0, "verify: %s", bgsnap_reader_errmsg(r));

	/* Eager restore into memory that holds garbage, 1 and 3 threads. */
	for (unsigned threads = 1; threads <= 3; threads += 2) {
		struct bgsnap_restore_target t[FG_MAX_REGIONS];
		for (unsigned i = 0; i < s.nregions; i++) {
			t[i] = (struct bgsnap_restore_target){ i, aligned_alloc(TU_PAGE, s.pages[i] * TU_PAGE), s.pages[i] * TU_PAGE };
			CHECK(t[i].dst, "out of memory");
			memset(t[i].dst, 0xA5, t[i].len);
		}
		CHECK_RC(bgsnap_restore_reader(r, t, s.nregions, threads, err, sizeof(err)), 0, "restore: %s", err);
		for (unsigned i = 0; i < s.nregions; i++) {
			CHECK(!memcmp(t[i].dst, s.mem[i], t[i].len), "restore, %u threads: region %u differs", threads, i);
			free(t[i].dst);
		}
	}
	bgsnap_reader_close(r);

	/* As a stream: every record in file order, decoded. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", path);
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "open_stream: %s", err);
	struct bgsnap_record rec;
	uint64_t pages = 0;
	int rc;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0 && rec.kind != BGSNAP_REC_END) {
		if (rec.kind != BGSNAP_REC_PAGES)
			continue;
		CHECK(!memcmp(rec.data, s.mem[rec.region] + rec.first_page * TU_PAGE, rec.count * TU_PAGE),
		      "stream: region %u pages %llu+%llu differ", rec.region, (unsigned long long)rec.first_page,
		      (unsigned long long)rec.count);
		pages += rec.count;
	}
	CHECK(rc > 0, "next: %s", bgsnap_reader_errmsg(r));
	CHECK(pages == fi.pages_total - fi.pages_zero, "stream: %llu data pages of %llu",
	      (unsigned long long)pages, (unsigned long long)(fi.pages_total - fi.pages_zero));
	bgsnap_reader_close(r);
	close(fd);
	fg_free(&s);
	printf("mixed file: %llu chunks compressed, %llu raw; %llu CPAGES + %llu PAGES records, %llu -> %llu bytes\n",
	       (unsigned long long)chunks[0], (unsigned long long)chunks[1], (unsigned long long)fi.cpage_records,
	       (unsigned long long)fi.page_records, (unsigned long long)fi.raw_bytes,
	       (unsigned long long)fi.stored_bytes);
}

int main(void)
{
	choices();
	printf("choices: ok\n");
	if (!bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD_AUTO))
		tu_skip("this build has no zstd (libzstd-dev not found by pkg-config)");
	mixed_file();
	printf("PASS\n");
	return 0;
}
