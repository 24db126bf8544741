/*
 * t_format_lineage_encoder - the encoder's version 3 files, read back byte
 * by byte: a full file (LINEAGE with parent 0, every page) and an
 * incremental one (a parent, some pages left out, each kept page exactly
 * once in the index), raw and compressed; w->file_crc after fmtw_finish is
 * the TRAILER's file_crc and the crc32c of every byte before the trailer;
 * lineages that break the rules are refused, a full v3 file with a page
 * left out is never finished, a page written twice is refused even in an
 * incremental file.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fmtgen.h"
#include "format/crc32c.h"
#include "format/format.h"
#include "format/le.h"
#include "sink/sink.h"
#include "testutil.h"

#define HDR_PAYLOAD (FMT_MAGIC_LEN + FMT_REC_HDR_LEN)

static void lin_make(struct fmt_lineage *l, uint8_t idbyte, const struct fmt_lineage *parent, uint32_t pcrc)
{
	memset(l, 0, sizeof(*l));
	memset(l->id, idbyte, FMT_ID_LEN);
	l->id[0] = 0x5a;
	if (parent) {
		memcpy(l->parent_id, parent->id, FMT_ID_LEN);
		l->parent_file_crc = pcrc;
		l->depth = parent->depth + 1;
	}
}

/* Sum of the page counts of the index's page records, per record kind. */
static uint64_t index_pages(const uint8_t *f, size_t len, uint64_t *pages_total)
{
	const uint8_t *t = f + len - FMT_TRAILER_REC_LEN + FMT_REC_HDR_LEN;
	uint64_t ioff = le64_load(t);
	*pages_total = le64_load(t + 8);
	CHECK(ioff < len && le32_load(f + ioff) == FMT_REC_INDEX, "index not at %llu", (unsigned long long)ioff);
	uint64_t n = le64_load(f + ioff + FMT_REC_HDR_LEN), sum = 0;
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *e = f + ioff + FMT_REC_HDR_LEN + 8 + i * FMT_INDEX_ENTRY_LEN;
		uint32_t kind = le32_load(e);
		if (kind == FMT_REC_PAGES || kind == FMT_REC_ZERO || kind == FMT_REC_CPAGES)
			sum += le64_load(e + 16);
	}
	return sum;
}

/* Writes `s` to `path` and checks the header, the lineage and the crc. */
static void check_file(struct fg_spec *s, const char *path, const struct fmt_lineage *l, uint64_t want_pages)
{
	uint32_t crc = 0;
	s->lin = l;
	s->file_crc = &crc;
	fg_write_path(s, path);
	size_t len;
	uint8_t *f = fg_read_file(path, &len);
	const uint8_t *h = f + HDR_PAYLOAD;
	CHECK(le32_load(f + FMT_MAGIC_LEN) == FMT_REC_HEADER, "%s: no header", path);
	CHECK(le32_load(h) == 3, "%s: version %u, want 3", path, le32_load(h));
	CHECK(le32_load(h + 8) == s->nregions, "%s: region count", path);
	CHECK(!memcmp(h + 16, l->id, 16) && !memcmp(h + 32, l->parent_id, 16), "%s: ids not at 16/32", path);
	CHECK(le32_load(h + 48) == l->parent_file_crc && le32_load(h + 52) == l->depth,
	      "%s: parent crc 0x%08x depth %u", path, le32_load(h + 48), le32_load(h + 52));
	CHECK(le32_load(h + 56) == strlen(s->names[0]) && !memcmp(h + 60, s->names[0], 4),
	      "%s: region table not at 56", path);
	uint64_t hlen = le64_load(f + FMT_MAGIC_LEN + 8);
	uint32_t hcrc = crc32c(0, f + FMT_MAGIC_LEN, FMT_REC_HDR_LEN + hlen);
	CHECK(hcrc == le32_load(f + HDR_PAYLOAD + hlen), "%s: header crc", path);
	const uint8_t *t = f + len - FMT_TRAILER_REC_LEN + FMT_REC_HDR_LEN;
	CHECK(le32_load(t + 48) == crc, "%s: w->file_crc 0x%08x, trailer 0x%08x", path, crc, le32_load(t + 48));
	CHECK(crc32c(0, f, len - FMT_TRAILER_REC_LEN) == crc, "%s: file_crc is not the crc before the trailer", path);
	uint64_t total, held = index_pages(f, len, &total);
	uint64_t all = 0;
	for (unsigned i = 0; i < s->nregions; i++)
		all += s->pages[i];
	CHECK(total == all, "%s: pages_total %llu, want %llu", path, (unsigned long long)total,
	      (unsigned long long)all);
	CHECK(held == want_pages, "%s: index holds %llu pages, want %llu", path, (unsigned long long)held,
	      (unsigned long long)want_pages);
	free(f);
}

static int begin_lin(struct fmt_writer *w, struct sink *sk, struct bgsnap_err *e, int fd,
                     const struct fmt_lineage *l)
{
	static const struct fmt_region r[] = { { "ram", 0x10000, 4 * 4096 } };
	err_clear(e);
	CHECK_RC(sink_open_fd(sk, fd, e), 0, "sink_open_fd");
	struct fmt_out out = { sk, sink_out_writev, sink_out_flush, SINK_IOV_MAX, NULL };
	return fmtw_begin_lineage(w, &out, r, 1, NULL, l, e);
}

static void bad_lineage(int fd, const char *what, const struct fmt_lineage *l, const char *want)
{
	struct fmt_writer w;
	struct sink sk;
	struct bgsnap_err e;
	CHECK_RC(begin_lin(&w, &sk, &e, fd, l), -EINVAL, "%s accepted", what);
	CHECK(strstr(e.msg, want), "%s: message '%s' lacks '%s'", what, e.msg, want);
	fmtw_free(&w);
	sink_abort(&sk);
}

static void refusals(void)
{
	int fd = open("/dev/null", O_WRONLY);
	CHECK(fd >= 0, "open /dev/null");
	struct fmt_lineage full, l;
	lin_make(&full, 1, NULL, 0);
	l = full;
	memset(l.id, 0, 16);
	bad_lineage(fd, "zero id", &l, "all zero");
	l = full;
	l.depth = 1;
	bad_lineage(fd, "full with depth", &l, "full");
	l = full;
	l.parent_file_crc = 7;
	bad_lineage(fd, "full with parent crc", &l, "full");
	lin_make(&l, 2, &full, 9);
	l.depth = 0;
	bad_lineage(fd, "incremental at depth 0", &l, "depth 0");
	lin_make(&l, 2, &full, 9);
	l.depth = FMT_MAX_DEPTH + 1;
	bad_lineage(fd, "depth 65536", &l, "depth");
	lin_make(&l, 2, &full, 9);
	memcpy(l.parent_id, l.id, 16);
	bad_lineage(fd, "own parent", &l, "itself");

	static uint8_t page[4096 * 4];
	memset(page, 3, sizeof(page));
	struct fmt_writer w;
	struct sink sk;
	struct bgsnap_err e;
	CHECK_RC(begin_lin(&w, &sk, &e, fd, &full), 0, "full lineage: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 0, 0, 3, page), 0, "pages: %s", e.msg);
	CHECK_RC(fmtw_finish(&w, NULL), -EINVAL, "a full v3 file with a page left out was finished");
	CHECK(strstr(e.msg, "never written"), "message: %s", e.msg);
	fmtw_free(&w);
	sink_abort(&sk);

	lin_make(&l, 2, &full, 9);
	CHECK_RC(begin_lin(&w, &sk, &e, fd, &l), 0, "incremental lineage: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 0, 1, 2, page), 0, "pages: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 0, 2, 1, page), -EINVAL, "incremental: a page written twice was accepted");
	fmtw_free(&w);
	sink_abort(&sk);

	CHECK_RC(begin_lin(&w, &sk, &e, fd, &l), 0, "incremental lineage: %s", e.msg);
	CHECK_RC(fmtw_finish(&w, NULL), 0, "an incremental file holding no page: %s", e.msg);
	fmtw_free(&w);
	sink_abort(&sk);
	close(fd);
}

int main(void)
{
	refusals();
	for (int compress = 0; compress <= 1; compress++) {
		struct fg_spec s;
		fg_default(&s);
		s.compress = compress;
		s.text_regions = compress ? ~0u : 0;
		fg_build(&s);
		struct fmt_lineage full, inc;
		char path[600];
		lin_make(&full, 1, NULL, 0);
		snprintf(path, sizeof(path), "%s/full%d.bgs", tu_tmpdir(), compress);
		uint64_t all = s.pages[0] + s.pages[1] + s.pages[2];
		check_file(&s, path, &full, all);
		uint32_t full_crc = 0;
		s.file_crc = &full_crc;
		fg_write_path(&s, path);

		/* Every 7th page of region 1 and region 2's first 100: the
		 * rest are the parent's. */
		uint8_t *keep1 = calloc(s.pages[1], 1), *keep2 = calloc(s.pages[2], 1), *keep0 = calloc(s.pages[0], 1);
		uint64_t kept = 0;
		for (uint64_t p = 0; p < s.pages[1]; p++)
			kept += keep1[p] = p % 7 == 0;
		for (uint64_t p = 0; p < 100; p++)
			kept += keep2[p] = 1;
		s.keep[0] = keep0;
		s.keep[1] = keep1;
		s.keep[2] = keep2;
		lin_make(&inc, 2, &full, full_crc);
		snprintf(path, sizeof(path), "%s/inc%d.bgs", tu_tmpdir(), compress);
		check_file(&s, path, &inc, kept);
		free(keep0);
		free(keep1);
		free(keep2);
		fg_free(&s);
	}
	printf("ok: full and incremental version 3 files, raw and compressed\n");
	return 0;
}
