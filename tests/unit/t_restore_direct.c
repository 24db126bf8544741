/*
 * t_restore_direct - eager restore reading page data straight into the
 * target: exact bytes into a THP-eligible fresh target (populated in 2 MiB
 * steps), into populated memory full of garbage (read in place, zero runs
 * written) and into fresh 4 KiB memory (userfaultfd), with 1 and 2
 * threads, from raw files with single-page records (slices of more records
 * than one preadv takes) and from compressed files (frames decoded into the
 * target).  A record whose page data is corrupt fails the restore with
 * -EBADMSG naming its offset, whichever way its pages were read, and the
 * same target then takes a good restore exactly.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/format.h"
#include "fmtgen.h"
#include "testutil.h"

#define HUGE (2u << 20)

enum { FRESH, THP, GARBAGE, NMODES };
static const char *names[] = { "fresh", "thp", "garbage" };

/* len bytes, 2 MiB-aligned, between two PROT_NONE pages. */
static uint8_t *target(size_t len, int mode)
{
	size_t span = len + 2 * HUGE;
	uint8_t *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	uint8_t *d = (uint8_t *)(((uintptr_t)p + HUGE) & ~(uintptr_t)(HUGE - 1));
	CHECK(mprotect(d - TU_PAGE, TU_PAGE, PROT_NONE) == 0 && mprotect(d + len, TU_PAGE, PROT_NONE) == 0,
	      "mprotect");
	CHECK(madvise(d, len, mode == THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0, "madvise: %s", strerror(errno));
	if (mode == GARBAGE)
		memset(d, 0xA5, len);
	return d;
}

/* kB of AnonHugePages in mappings inside [d, d+len). */
static long huge_kb(const uint8_t *d, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	CHECK(f != NULL, "smaps: %s", strerror(errno));
	char line[512];
	int inside = 0;
	long kb = 0, v;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
		if (dash && sp && dash < sp && sscanf(line, "%llx-%llx ", &lo, &hi) == 2)
			inside = lo >= (uintptr_t)d && hi <= (uintptr_t)d + len;
		else if (inside && sscanf(line, "AnonHugePages: %ld kB", &v) == 1)
			kb += v;
	}
	fclose(f);
	return kb;
}

/* THP is off for the whole machine: no huge pages to expect. */
static int thp_never(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return !f || strstr(buf, "[never]") != NULL;
}

/* Restores region r of `path` into a new target; returns the rc. */
static int restore_into(const char *path, unsigned region, uint8_t *dst, size_t len, unsigned threads,
                        char *err, size_t err_len)
{
	struct bgsnap_restore_target t = { region, dst, len };
	return bgsnap_restore(path, &t, 1, threads, err, err_len);
}

static void check_file(const char *path, const struct fg_spec *s, const char *what)
{
	for (int mode = 0; mode < NMODES; mode++)
		for (unsigned threads = 1; threads <= 2; threads++)
			for (unsigned i = 0; i < s->nregions; i++) {
				size_t len = s->pages[i] * TU_PAGE;
				uint8_t *d = target(len, mode);
				char err[600];
				CHECK_RC(restore_into(path, i, d, len, threads, err, sizeof(err)), 0,
				         "%s into %s memory, %u threads, region %u: %s", what, names[mode], threads, i, err);
				CHECK(!memcmp(d, s->mem[i], len), "%s into %s memory, %u threads: region %u differs", what,
				      names[mode], threads, i);
				/* The THP target was populated with 2 MiB pages, not
				 * filled 4 KiB at a time (userfaultfd). */
				if (mode == THP && len >= 2 * HUGE && !thp_never())
					CHECK(huge_kb(d, len) > 0, "%s into THP memory: no huge page in the restored region",
					      what);
			}
	printf("ok: %s, every target kind, 1 and 2 threads\n", what);
}

/* A byte of the page data of the record holding `page` of region 2 flipped
 * (the checksum is not recomputed): every kind of target refuses it. */
static void check_corrupt(const char *path, const struct fg_spec *s, uint64_t page)
{
	char err[600], bad[600];
	bgsnap_reader *r;
	struct bgsnap_record rec;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	CHECK_RC(bgsnap_reader_page_run(r, 2, page, &rec), 0, "page_run");
	bgsnap_reader_close(r);
	CHECK(rec.kind == BGSNAP_REC_PAGES, "page %llu is not in a PAGES record", (unsigned long long)page);
	size_t flen;
	uint8_t *f = fg_read_file(path, &flen);
	size_t at = (size_t)rec.offset + FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN + 100;
	CHECK(at < flen, "offset");
	f[at] ^= 0x40;
	snprintf(bad, sizeof(bad), "%s.bad", path);
	fg_write_file(bad, f, flen);
	free(f);
	char off[32];
	snprintf(off, sizeof(off), "%llu", (unsigned long long)rec.offset);
	size_t len = s->pages[2] * TU_PAGE;
	for (int mode = 0; mode < NMODES; mode++)
		for (unsigned threads = 1; threads <= 2; threads++) {
			uint8_t *d = target(len, mode);
			CHECK_RC(restore_into(bad, 2, d, len, threads, err, sizeof(err)), -EBADMSG,
			         "corrupt record into %s memory, %u threads", names[mode], threads);
			CHECK(strstr(err, off) != NULL, "the message does not name offset %s: %s", off, err);
			/* The failed target takes a good restore afterwards. */
			CHECK_RC(restore_into(path, 2, d, len, threads, err, sizeof(err)), 0, "restore after: %s", err);
			CHECK(!memcmp(d, s->mem[2], len), "%s memory: a good restore after a failed one differs",
			      names[mode]);
		}
	printf("ok: corrupt record at offset %s refused (-EBADMSG) into every target kind\n", off);
}

/* The file cut in half after the reader opened it: the read runs short,
 * the restore fails with -EBADMSG (truncated), into every target kind. */
static void check_truncated(const char *path, const struct fg_spec *s)
{
	char cut[600], err[600];
	snprintf(cut, sizeof(cut), "%s.cut", path);
	size_t flen;
	uint8_t *f = fg_read_file(path, &flen);
	size_t len = s->pages[2] * TU_PAGE;
	for (int mode = 0; mode < NMODES; mode++) {
		fg_write_file(cut, f, flen);
		bgsnap_reader *r;
		CHECK_RC(bgsnap_reader_open(&r, cut, err, sizeof(err)), 0, "open: %s", err);
		CHECK(truncate(cut, (off_t)(flen / 2)) == 0, "truncate: %s", strerror(errno));
		struct bgsnap_restore_target t = { 2, target(len, mode), len };
		CHECK_RC(bgsnap_restore_reader(r, &t, 1, 2, err, sizeof(err)), -EBADMSG,
		         "restore of a file truncated under the reader, %s memory", names[mode]);
		CHECK(strstr(err, "truncated") != NULL, "the message does not say truncated: %s", err);
		bgsnap_reader_close(r);
	}
	free(f);
	printf("ok: a file truncated under the reader fails the restore (-EBADMSG)\n");
}

int main(void)
{
	char path[512];
	struct fg_spec s;

	/* Single-page runs, every 3rd page zero: ~1000 records per slice. */
	fg_default(&s);
	s.pages[2] = 3000;
	s.max_run = 1;
	s.zero_every = 3;
	fg_build(&s);
	snprintf(path, sizeof(path), "%s/small.bgs", tu_tmpdir());
	fg_write_path(&s, path);
	check_file(path, &s, "single-page records");
	fg_free(&s);

	/* Long runs (raw): whole slices read in place. */
	fg_default(&s);
	s.pages[2] = 3000;
	fg_build(&s);
	snprintf(path, sizeof(path), "%s/raw.bgs", tu_tmpdir());
	fg_write_path(&s, path);
	check_file(path, &s, "raw file");
	check_corrupt(path, &s, 1500);
	check_truncated(path, &s);
	fg_free(&s);

	/* Compressed: frames decoded into the target. */
	fg_default(&s);
	s.pages[2] = 3000;
	s.compress = FMT_COMPRESS_ZSTD;
	s.text_regions = 0x4;
	fg_build(&s);
	snprintf(path, sizeof(path), "%s/z.bgs", tu_tmpdir());
	fg_write_path(&s, path);
	check_file(path, &s, "compressed file");
	fg_free(&s);
	return 0;
}
