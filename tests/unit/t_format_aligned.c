/*
 * t_format_aligned - the page-aligned layout (format version 4): the
 * encoder's file has every PAGES record's data at a multiple of the page
 * size and PAD records of zero bytes before them, reads back exactly
 * (random access, verify, a stream) and restores exactly by copy and by
 * mapping (every target mapped), also with compression (CPAGES stay
 * unaligned: those regions are restored by copy, or refused with
 * BGSNAP_RESTORE_MAP_ONLY) and with a lineage.  Damaged aligned files, with
 * every checksum recomputed, are rejected: features without the aligned
 * bit or with an unknown one, a PAD record in a version 1 file, a non-zero
 * PAD byte (by verify, which reads the PADs), a PAGES record moved off its
 * page boundary.  A plain file is refused by the map restore with
 * BGSNAP_RESTORE_MAP_ONLY and restored by copy without it.
 * timeout: 120
 */
#include <errno.h>
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

static struct fg_spec g_s;

static void targets(struct bgsnap_restore_target *t)
{
	for (unsigned i = 0; i < g_s.nregions; i++)
		t[i] = (struct bgsnap_restore_target){ i, tu_map_guarded(g_s.pages[i] * TU_PAGE), g_s.pages[i] * TU_PAGE };
}

static int same_and_unmap(struct bgsnap_restore_target *t)
{
	int ok = 1;
	for (unsigned i = 0; i < g_s.nregions; i++) {
		ok &= !memcmp(t[i].dst, g_s.mem[i], t[i].len);
		munmap((uint8_t *)t[i].dst - TU_PAGE, t[i].len + 2 * TU_PAGE);
	}
	return ok;
}

/* Walks the records of a file image: every PAGES data aligned; PAD count. */
static unsigned walk(const uint8_t *b, size_t len, unsigned *pages_recs)
{
	uint64_t hlen = le64_load(b + FMT_MAGIC_LEN + 8);
	uint64_t io = le64_load(b + len - FMT_TRAILER_REC_LEN + FMT_REC_HDR_LEN);
	unsigned pads = 0;
	*pages_recs = 0;
	for (uint64_t off = FMT_MAGIC_LEN + FMT_REC_HDR_LEN + hlen + 4; off < io;) {
		uint32_t type = le32_load(b + off);
		uint64_t span = FMT_REC_HDR_LEN + le64_load(b + off + 8) + 4;
		CHECK(span <= io - off, "walking records");
		if (type == FMT_REC_PAGES) {
			CHECK((off + 40) % 4096 == 0, "PAGES record at %llu: data not page-aligned", (unsigned long long)off);
			(*pages_recs)++;
		}
		if (type == FMT_REC_PAD) {
			CHECK(span - 20 < 4096, "PAD of %llu bytes", (unsigned long long)(span - 20));
			for (uint64_t k = off + 16; k < off + span - 4; k++)
				CHECK(!b[k], "PAD byte not zero");
			pads++;
		}
		off += span;
	}
	return pads;
}

/* The whole-file and trailer crcs after a change; `rec` (offset, span) too when span != 0. */
static void fix(uint8_t *b, size_t len, uint64_t rec, uint64_t span)
{
	size_t toff = len - FMT_TRAILER_REC_LEN;
	if (span)
		le32_store(b + rec + span - 4, crc32c(0, b + rec, span - 4));
	le32_store(b + toff + FMT_REC_HDR_LEN + 48, crc32c(0, b, toff));
	le32_store(b + len - 4, crc32c(0, b + toff, FMT_TRAILER_REC_LEN - 4));
}

static int open_verify(const char *path, uint8_t *b, size_t len, char *err, size_t elen)
{
	fg_write_file(path, b, len);
	bgsnap_reader *r;
	int rc = bgsnap_reader_open(&r, path, err, elen);
	if (rc < 0)
		return rc;
	rc = bgsnap_reader_verify(r);
	if (rc < 0)
		snprintf(err, elen, "%s", bgsnap_reader_errmsg(r));
	bgsnap_reader_close(r);
	return rc;
}

static void restore_all_ways(const char *path, int expect_mapped)
{
	char err[512];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open %s: %s", path, err);
	CHECK_RC(bgsnap_reader_verify(r), 0, "verify: %s", bgsnap_reader_errmsg(r));
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	targets(t);
	CHECK_RC(bgsnap_restore_reader(r, t, g_s.nregions, 2, err, sizeof(err)), 0, "copy restore: %s", err);
	CHECK(same_and_unmap(t), "copy restore differs");
	for (unsigned flags = 0; flags < 2; flags++) {
		unsigned mapped = 99;
		targets(t);
		CHECK_RC(bgsnap_restore_map(r, t, g_s.nregions, 2, flags, &mapped, err, sizeof(err)), 0, "map restore: %s",
		         err);
		CHECK(mapped == (unsigned)expect_mapped, "%u targets mapped, want %d", mapped, expect_mapped);
		CHECK(same_and_unmap(t), "map restore (flags %u) differs", flags);
	}
	targets(t);
	int rc = bgsnap_restore_map(r, t, g_s.nregions, 2, BGSNAP_RESTORE_MAP_ONLY, NULL, err, sizeof(err));
	CHECK(expect_mapped == (int)g_s.nregions ? rc == 0 : rc == -ENOTSUP, "MAP_ONLY: %d %s", rc, err);
	if (rc == 0)
		CHECK(same_and_unmap(t), "MAP_ONLY restore differs");
	else
		same_and_unmap(t);
	bgsnap_reader_close(r);
}

int main(void)
{
	char path[512], bad[512], err[512];
	snprintf(path, sizeof(path), "%s/a.bgs", tu_tmpdir());
	snprintf(bad, sizeof(bad), "%s/bad.bgs", tu_tmpdir());

	/* Plain: the map restore copies; MAP_ONLY refuses. */
	fg_default(&g_s);
	g_s.max_run = 100;
	fg_build(&g_s);
	fg_write_path(&g_s, path);
	restore_all_ways(path, 0);
	fg_free(&g_s);

	fg_default(&g_s);
	g_s.max_run = 100;
	g_s.aligned = 1;
	fg_build(&g_s);
	fg_write_path(&g_s, path);
	size_t len;
	uint8_t *orig = fg_read_file(path, &len);
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.version == 4 && fi.page_aligned == 1 && fi.pad_records > 0, "version %u aligned %d pads %llu",
	      fi.version, fi.page_aligned, (unsigned long long)fi.pad_records);
	bgsnap_reader_close(r);
	unsigned prec;
	unsigned pads = walk(orig, len, &prec);
	CHECK(pads == fi.pad_records && prec == fi.page_records, "walk: %u pads %u PAGES, info %llu %llu", pads, prec,
	      (unsigned long long)fi.pad_records, (unsigned long long)fi.page_records);
	restore_all_ways(path, (int)g_s.nregions);

	/* A stream of it reads back too (the PADs are skipped). */
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open");
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "stream: %s", err);
	CHECK_RC(bgsnap_reader_verify(r), 0, "stream verify: %s", bgsnap_reader_errmsg(r));
	bgsnap_reader_close(r);
	close(fd);

	uint8_t *b = malloc(len);
	CHECK(b, "malloc");
	uint64_t hoff = FMT_MAGIC_LEN, hspan = FMT_REC_HDR_LEN + le64_load(orig + FMT_MAGIC_LEN + 8) + 4;
	uint64_t feat = hoff + FMT_REC_HDR_LEN + 12;
	static const uint32_t bad_feat[] = { 0, FMT_FEAT_LINEAGE, FMT_FEAT_ALIGNED | 4, FMT_FEAT_ALIGNED | 0x80000000u };
	for (unsigned i = 0; i < sizeof(bad_feat) / sizeof(bad_feat[0]); i++) {
		memcpy(b, orig, len);
		le32_store(b + feat, bad_feat[i]);
		fix(b, len, hoff, hspan);
		CHECK_RC(open_verify(bad, b, len, err, sizeof(err)), -EBADMSG, "features 0x%x accepted", bad_feat[i]);
	}
	/* Version 1 with PAD records: the PAD is an unknown record there. */
	memcpy(b, orig, len);
	le32_store(b + hoff + FMT_REC_HDR_LEN, 1);
	le32_store(b + feat, 0);
	fix(b, len, hoff, hspan);
	CHECK_RC(open_verify(bad, b, len, err, sizeof(err)), -EBADMSG, "version 1 with PADs accepted");
	printf("version 1 with PADs: %s\n", err);

	/* The first PAD: a byte set; then the PAD grown by one byte (its
	 * PAGES record moves off the page boundary). */
	uint64_t io = le64_load(orig + len - FMT_TRAILER_REC_LEN + FMT_REC_HDR_LEN), pad = 0, pspan = 0;
	for (uint64_t off = hoff + hspan; off < io; off += FMT_REC_HDR_LEN + le64_load(orig + off + 8) + 4)
		if (le32_load(orig + off) == FMT_REC_PAD && le64_load(orig + off + 8) > 0) {
			pad = off;
			pspan = FMT_REC_HDR_LEN + le64_load(orig + off + 8) + 4;
			break;
		}
	CHECK(pad, "no PAD record with a payload");
	memcpy(b, orig, len);
	b[pad + FMT_REC_HDR_LEN] = 1;
	fix(b, len, pad, pspan);
	CHECK_RC(open_verify(bad, b, len, err, sizeof(err)), -EBADMSG, "a non-zero PAD byte passed verify");
	CHECK(strstr(err, "PAD"), "message does not name the PAD: %s", err);
	printf("non-zero PAD: %s\n", err);

	/* Shrink the PAD by 8 bytes and move everything after it: the index
	 * entries after it shifted too, so the file is consistent except for
	 * the alignment. */
	uint8_t *c = malloc(len);
	CHECK(c, "malloc");
	memcpy(c, orig, pad);
	le64_store(c + pad + 8, le64_load(orig + pad + 8) - 8);
	memcpy(c + pad + FMT_REC_HDR_LEN, orig + pad + FMT_REC_HDR_LEN, pspan - FMT_REC_HDR_LEN - 4 - 8);
	le32_store(c + pad + pspan - 8 - 4, crc32c(0, c + pad, pspan - 8 - 4));
	memcpy(c + pad + pspan - 8, orig + pad + pspan, len - pad - pspan);
	size_t clen = len - 8;
	uint64_t cio = io - 8, n = le64_load(c + cio + FMT_REC_HDR_LEN);
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *e = c + cio + FMT_REC_HDR_LEN + 8 + i * FMT_INDEX_ENTRY_LEN;
		if (le64_load(e + 24) == pad)
			le64_store(e + 16, le64_load(e + 16) - 8);
		if (le64_load(e + 24) > pad)
			le64_store(e + 24, le64_load(e + 24) - 8);
	}
	uint64_t ispan = FMT_REC_HDR_LEN + le64_load(c + cio + 8) + 4;
	le64_store(c + clen - FMT_TRAILER_REC_LEN + FMT_REC_HDR_LEN, cio);
	fix(c, clen, cio, ispan);
	CHECK_RC(open_verify(bad, c, clen, err, sizeof(err)), -EBADMSG, "a PAGES record off its page boundary accepted");
	CHECK(strstr(err, "not page-aligned"), "message: %s", err);
	printf("misaligned PAGES: %s\n", err);
	free(c);
	free(b);
	free(orig);
	fg_free(&g_s);

	/* Compressed and aligned: the compressed regions are copied. */
	fg_default(&g_s);
	g_s.aligned = 1;
	g_s.compress = FMT_COMPRESS_ZSTD;
	g_s.text_regions = 4;   /* region 2 compresses; 0 and 1 stay raw */
	fg_build(&g_s);
	fg_write_path(&g_s, path);
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	bgsnap_reader_info(r, &fi, sizeof fi);
	bgsnap_reader_close(r);
	if (fi.cpage_records) {
		restore_all_ways(path, (int)g_s.nregions - 1);
	} else {
		printf("note: built without zstd, no CPAGES records\n");
		restore_all_ways(path, (int)g_s.nregions);
	}
	fg_free(&g_s);
	printf("ok: aligned files read, verify, restore by copy and by mapping; damaged ones are rejected\n");
	return 0;
}
