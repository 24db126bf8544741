/*
 * t_restore_hostile - a crafted snapshot can never make restore write
 * outside the memory it was given.  Every destination sits between
 * PROT_NONE guard pages (a stray write kills the test), and the file is
 * damaged bit by bit in its HEADER (region sizes, counts, names), its INDEX
 * (count, first and last entries: page ranges, counts, offsets, kinds) and
 * the run prefix of the first PAGES/ZERO records (region, first page, count), with every checksum
 * recomputed so that only the structural checks stand in the way (one bit
 * per byte, rotating over all eight bit positions along a field).  Each
 * damaged file goes through eager restore (2 threads), lazy restore and
 * the restore of the file read as a stream (bgsnap_restore_stream); each
 * either fails cleanly or restores exactly the original bytes.  The same
 * again for a page-aligned file (format version 4, PAD records), restored
 * by mapping too (bgsnap_restore_map): there a stray mapping would not
 * fault, so the guard pages are checked to be still PROT_NONE anonymous
 * memory after every map restore.
 * timeout: 600
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/crc32c.h"
#include "fmtgen.h"
#include "format/format.h"
#include "format/le.h"
#include "testutil.h"

static struct fg_spec g_s;
static unsigned g_eager_ok, g_lazy_ok, g_stream_ok, g_map_ok, g_mapped, g_runs;

/* 1 if the page at p is still a PROT_NONE private anonymous page. */
static int guard_intact(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "re");
	CHECK(f, "open /proc/self/maps");
	char line[512];
	int ok = 0;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, off;
		char perms[8], dev[16];
		unsigned long ino;
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &off, dev, &ino) != 6)
			continue;
		if (a >= lo && a < hi) {
			ok = !strcmp(perms, "---p") && ino == 0;
			break;
		}
	}
	fclose(f);
	return ok;
}

static void map_targets(struct bgsnap_restore_target *t)
{
	for (unsigned i = 0; i < g_s.nregions; i++)
		t[i] = (struct bgsnap_restore_target){ i, tu_map_guarded(g_s.pages[i] * TU_PAGE), g_s.pages[i] * TU_PAGE };
}

static void unmap_targets(struct bgsnap_restore_target *t)
{
	for (unsigned i = 0; i < g_s.nregions; i++)
		munmap((uint8_t *)t[i].dst - TU_PAGE, t[i].len + 2 * TU_PAGE);
}

static int same(const struct bgsnap_restore_target *t)
{
	for (unsigned i = 0; i < g_s.nregions; i++)
		if (memcmp(t[i].dst, g_s.mem[i], t[i].len))
			return 0;
	return 1;
}

/* The file read as a stream (bgsnap_restore_stream): records checked as
 * they come, the index only at the end, so a damaged header or index meets
 * other checks than through the random-access reader. */
static void restore_as_stream(const char *path, const char *what)
{
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	char err[600];
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "%s: open", what);
	bgsnap_reader *r;
	if (bgsnap_reader_open_stream(&r, fd, err, sizeof(err)) == 0) {
		map_targets(t);
		if (bgsnap_restore_stream(r, t, g_s.nregions, err, sizeof(err)) == 0) {
			CHECK(same(t), "%s: stream restore succeeded with different content", what);
			g_stream_ok++;
		}
		unmap_targets(t);
		bgsnap_reader_close(r);
	}
	close(fd);
}

/* Restores `path` both ways (and as a stream); a restore that succeeds
 * must give the original. */
static void restore_both(const char *path, const char *what)
{
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	char err[600];
	g_runs++;
	restore_as_stream(path, what);
	bgsnap_reader *r;
	if (bgsnap_reader_open(&r, path, err, sizeof(err)) < 0)
		return;
	map_targets(t);
	if (bgsnap_restore_reader(r, t, g_s.nregions, 2, err, sizeof(err)) == 0) {
		CHECK(same(t), "%s: eager restore succeeded with different content", what);
		g_eager_ok++;
	}
	unmap_targets(t);
	if (g_s.aligned) {
		map_targets(t);
		unsigned mapped = 0;
		if (bgsnap_restore_map(r, t, g_s.nregions, 2, 0, &mapped, err, sizeof(err)) == 0) {
			CHECK(same(t), "%s: map restore succeeded with different content", what);
			g_map_ok++;
			g_mapped += mapped;
		}
		for (unsigned i = 0; i < g_s.nregions; i++)
			CHECK(guard_intact((uint8_t *)t[i].dst - TU_PAGE) && guard_intact((uint8_t *)t[i].dst + t[i].len),
			      "%s: a guard page of target %u was replaced by the map restore", what, i);
		unmap_targets(t);
	}
	map_targets(t);
	bgsnap_lazy *l;
	if (bgsnap_lazy_restore_start(&l, r, t, g_s.nregions, err, sizeof(err)) == 0) {
		/* On failure unreadable pages are poisoned: only compare a success. */
		if (bgsnap_lazy_wait(l) == 0) {
			CHECK(same(t), "%s: lazy restore succeeded with different content", what);
			g_lazy_ok++;
		}
		bgsnap_lazy_free(l);
	}
	unmap_targets(t);
	bgsnap_reader_close(r);
}

/* Recomputes the crc of the record at [off, off+span), the whole-file crc
 * and the trailer's crc. */
static void fix_crcs(uint8_t *b, size_t len, uint64_t off, uint64_t span)
{
	size_t toff = len - FMT_TRAILER_REC_LEN;
	le32_store(b + off + span - 4, crc32c(0, b + off, span - 4));
	le32_store(b + toff + FMT_REC_HDR_LEN + 48, crc32c(0, b, toff));
	le32_store(b + len - 4, crc32c(0, b + toff, FMT_TRAILER_REC_LEN - 4));
}

static void damage_range(const uint8_t *orig, size_t len, uint64_t rec_off, uint64_t rec_span, uint64_t from,
                         uint64_t to, const char *path, const char *what)
{
	uint8_t *b = malloc(len);
	CHECK(b, "malloc");
	for (uint64_t at = from; at < to; at++)
		for (int bit = (int)(at * 3 % 8); bit < 8; bit += 8) {   /* one bit per byte, rotating */
			memcpy(b, orig, len);
			b[at] ^= (uint8_t)(1u << bit);
			fix_crcs(b, len, rec_off, rec_span);
			fg_write_file(path, b, len);
			char w[128];
			snprintf(w, sizeof(w), "%s: bit %d of byte %llu", what, bit, (unsigned long long)at);
			restore_both(path, w);
		}
	free(b);
}

static void run(int aligned)
{
	fg_default(&g_s);
	g_s.max_run = 100;
	g_s.aligned = aligned;
	g_eager_ok = g_lazy_ok = g_stream_ok = g_map_ok = g_mapped = g_runs = 0;
	fg_build(&g_s);
	char good[512], path[512];
	snprintf(good, sizeof(good), "%s/good.bgs", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/bad.bgs", tu_tmpdir());
	fg_write_path(&g_s, good);
	restore_both(good, "intact file");
	CHECK(g_eager_ok == 1 && g_lazy_ok == 1 && g_stream_ok == 1, "the intact file did not restore all three ways");
	/* Regions of 16 pages or more are mapped (the 5-page one is read). */
	CHECK(!aligned || (g_map_ok == 1 && g_mapped == g_s.nregions), "the intact aligned file did not restore by "
	      "mapping (%u ok, %u targets mapped)", g_map_ok, g_mapped);
	g_eager_ok = g_lazy_ok = g_stream_ok = g_map_ok = 0;
	g_runs = 0;

	size_t len;
	uint8_t *orig = fg_read_file(good, &len);
	size_t toff = len - FMT_TRAILER_REC_LEN;
	uint64_t io = le64_load(orig + toff + FMT_REC_HDR_LEN);

	/* HEADER payload: version .. region table (sizes, addresses, names). */
	uint64_t hlen = le64_load(orig + FMT_MAGIC_LEN + 8);
	damage_range(orig, len, FMT_MAGIC_LEN, FMT_REC_HDR_LEN + hlen + 4, FMT_MAGIC_LEN + FMT_REC_HDR_LEN,
	             FMT_MAGIC_LEN + FMT_REC_HDR_LEN + hlen, path, "HEADER");
	unsigned hdr_runs = g_runs, hdr_ok = g_eager_ok;

	/* INDEX: its count and the first and last entries (every field kind:
	 * kind, region, first page, count, offset). */
	uint64_t ie = io + FMT_REC_HDR_LEN + 8, nent = le64_load(orig + io + FMT_REC_HDR_LEN);
	CHECK(nent > 12, "only %llu index entries", (unsigned long long)nent);
	damage_range(orig, len, io, toff - io, io + FMT_REC_HDR_LEN, ie + 8 * FMT_INDEX_ENTRY_LEN, path, "INDEX");
	damage_range(orig, len, io, toff - io, ie + (nent - 2) * FMT_INDEX_ENTRY_LEN, toff - 4, path, "INDEX");

	/* The run prefix (region, reserved, first, count) of every PAGES/ZERO record. */
	unsigned nrec = 0;
	for (uint64_t off = FMT_MAGIC_LEN + FMT_REC_HDR_LEN + hlen + 4; off < io;) {
		uint32_t type = le32_load(orig + off);
		uint64_t span = FMT_REC_HDR_LEN + le64_load(orig + off + 8) + 4;
		CHECK(span <= io - off, "walking records");
		if ((type == FMT_REC_PAGES || type == FMT_REC_ZERO) && nrec < 10) {
			damage_range(orig, len, off, span, off + FMT_REC_HDR_LEN, off + FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN,
			             path, "record prefix");
			nrec++;
		}
		off += span;
	}
	printf("ok: %s: %u damaged files (%u header: %u still valid, e.g. renamed regions), %u run prefixes; "
	       "eager succeeded on %u, lazy on %u, as a stream on %u, map on %u, always with the original bytes; "
	       "no stray write\n", aligned ? "page-aligned" : "plain", g_runs, hdr_runs, hdr_ok, nrec, g_eager_ok,
	       g_lazy_ok, g_stream_ok, g_map_ok);
	free(orig);
	fg_free(&g_s);
}

int main(void)
{
	run(0);
	run(1);
	return 0;
}
