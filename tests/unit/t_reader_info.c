/*
 * t_reader_info - bgsnap_reader_info and bgsnap_reader_region: the index
 * counts (records of each kind, index offset, zero pages per region) agree
 * with a sequential pass, for a file at once and for a stream after END
 * (zero before); the caller's struct size is honoured both ways (a smaller
 * struct is filled only up to its size, a larger one is zero-filled past
 * the library's).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "testutil.h"

struct counts {
	uint64_t records, pages, zero, state, index_offset;
	uint64_t region_zero[FG_MAX_REGIONS];
};

/* Counts the records of a pass to END. */
static void walk(bgsnap_reader *r, struct counts *c)
{
	struct bgsnap_record rec;
	int rc;
	memset(c, 0, sizeof(*c));
	while ((rc = bgsnap_reader_next(r, &rec)) > 0 && rec.kind != BGSNAP_REC_END) {
		c->records++;
		c->pages += rec.kind == BGSNAP_REC_PAGES;
		c->state += rec.kind == BGSNAP_REC_STATE;
		if (rec.kind == BGSNAP_REC_ZERO) {
			c->zero++;
			c->region_zero[rec.region] += rec.count;
		}
	}
	CHECK(rc > 0, "next failed: %s", bgsnap_reader_errmsg(r));
	c->index_offset = rec.offset;   /* END's offset is the INDEX record's */
}

static void check_counts(bgsnap_reader *r, const struct counts *c, unsigned nregions, const char *what)
{
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "%s: info", what);
	CHECK(fi.records == c->records && fi.page_records == c->pages && fi.zero_records == c->zero &&
	              fi.state_records == c->state,
	      "%s: records %llu (%llu PAGES %llu ZERO %llu STATE), the pass saw %llu (%llu %llu %llu)", what,
	      (unsigned long long)fi.records, (unsigned long long)fi.page_records,
	      (unsigned long long)fi.zero_records, (unsigned long long)fi.state_records,
	      (unsigned long long)c->records, (unsigned long long)c->pages, (unsigned long long)c->zero,
	      (unsigned long long)c->state);
	CHECK(fi.index_offset == c->index_offset, "%s: index offset %llu, the INDEX is at %llu", what,
	      (unsigned long long)fi.index_offset, (unsigned long long)c->index_offset);
	uint64_t zero = 0;
	for (unsigned i = 0; i < nregions; i++) {
		struct bgsnap_region_info ri;
		CHECK_RC(bgsnap_reader_region(r, i, &ri, sizeof ri), 0, "%s: region %u", what, i);
		CHECK(ri.pages_zero == c->region_zero[i], "%s: region %u: %llu zero pages, the pass saw %llu", what,
		      i, (unsigned long long)ri.pages_zero, (unsigned long long)c->region_zero[i]);
		zero += ri.pages_zero;
	}
	CHECK(zero == fi.pages_zero, "%s: regions hold %llu zero pages, the trailer says %llu", what,
	      (unsigned long long)zero, (unsigned long long)fi.pages_zero);
}

/* A caller's struct of another size: only its own bytes are written, and
 * those past the library's struct are zeros. */
static void check_sizes(bgsnap_reader *r)
{
	struct bgsnap_file_info want;
	CHECK_RC(bgsnap_reader_info(r, &want, sizeof want), 0, "info");
	unsigned char big[sizeof(want) + 32], small[sizeof(want)];
	memset(big, 0xAA, sizeof(big));
	CHECK_RC(bgsnap_reader_info(r, (struct bgsnap_file_info *)big, sizeof(big)), 0, "info, larger struct");
	CHECK(!memcmp(big, &want, sizeof(want)), "info, larger struct: the known fields differ");
	for (size_t i = sizeof(want); i < sizeof(big); i++)
		CHECK(big[i] == 0, "info, larger struct: byte %zu past the library's struct is 0x%02x, not 0", i,
		      big[i]);
	size_t old = offsetof(struct bgsnap_file_info, records);
	memset(small, 0xAA, sizeof(small));
	CHECK_RC(bgsnap_reader_info(r, (struct bgsnap_file_info *)small, old), 0, "info, older struct");
	CHECK(!memcmp(small, &want, old), "info, older struct: the known fields differ");
	for (size_t i = old; i < sizeof(small); i++)
		CHECK(small[i] == 0xAA, "info, older struct: byte %zu past the caller's size was written", i);

	struct bgsnap_region_info rw;
	CHECK_RC(bgsnap_reader_region(r, 0, &rw, sizeof rw), 0, "region");
	unsigned char rbig[sizeof(rw) + 16], rsmall[sizeof(rw)];
	memset(rbig, 0xAA, sizeof(rbig));
	CHECK_RC(bgsnap_reader_region(r, 0, (struct bgsnap_region_info *)rbig, sizeof(rbig)), 0, "region, larger");
	CHECK(!memcmp(rbig, &rw, sizeof(rw)), "region, larger struct: the known fields differ");
	for (size_t i = sizeof(rw); i < sizeof(rbig); i++)
		CHECK(rbig[i] == 0, "region, larger struct: byte %zu is 0x%02x, not 0", i, rbig[i]);
	size_t rold = offsetof(struct bgsnap_region_info, pages_zero);
	memset(rsmall, 0xAA, sizeof(rsmall));
	CHECK_RC(bgsnap_reader_region(r, 0, (struct bgsnap_region_info *)rsmall, rold), 0, "region, older");
	CHECK(!memcmp(rsmall, &rw, rold), "region, older struct: the known fields differ");
	for (size_t i = rold; i < sizeof(rsmall); i++)
		CHECK(rsmall[i] == 0xAA, "region, older struct: byte %zu past the caller's size was written", i);

	CHECK_RC(bgsnap_reader_info(r, NULL, sizeof want), -EINVAL, "info into NULL");
	CHECK_RC(bgsnap_reader_info(NULL, &want, sizeof want), -EINVAL, "info of NULL");
	CHECK_RC(bgsnap_reader_region(r, 0, NULL, sizeof rw), -EINVAL, "region into NULL");
}

int main(void)
{
	struct fg_spec s;
	fg_default(&s);
	fg_build(&s);
	char path[512], err[512];
	snprintf(path, sizeof(path), "%s/a.bgs", tu_tmpdir());
	fg_write_path(&s, path);

	/* A file: the counts come from the index at open, before any pass. */
	bgsnap_reader *r;
	struct counts c;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_file_info before;
	CHECK_RC(bgsnap_reader_info(r, &before, sizeof before), 0, "info");
	walk(r, &c);
	CHECK(c.zero > 0 && c.state > 0, "the generated file has no ZERO or no STATE record");
	check_counts(r, &c, s.nregions, "file");
	struct bgsnap_file_info after;
	CHECK_RC(bgsnap_reader_info(r, &after, sizeof after), 0, "info");
	CHECK(!memcmp(&before, &after, sizeof(after)), "file: a pass changed what info says");
	check_sizes(r);
	bgsnap_reader_close(r);

	/* A stream: zero until END, then the same counts. */
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s", path);
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "open_stream: %s", err);
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "stream info");
	CHECK(!fi.records && !fi.page_records && !fi.zero_records && !fi.state_records && !fi.index_offset,
	      "stream: index counts before END are not 0");
	struct bgsnap_record rec;
	for (int i = 0; i < 3; i++)
		CHECK(bgsnap_reader_next(r, &rec) > 0, "stream next: %s", bgsnap_reader_errmsg(r));
	for (unsigned i = 0; i < s.nregions; i++) {
		struct bgsnap_region_info ri;
		CHECK_RC(bgsnap_reader_region(r, i, &ri, sizeof ri), 0, "stream region %u", i);
		CHECK(ri.pages_zero == 0, "stream: region %u has %llu zero pages before END", i,
		      (unsigned long long)ri.pages_zero);
	}
	bgsnap_reader_close(r);
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "open_stream: %s", err);
	walk(r, &c);
	check_counts(r, &c, s.nregions, "stream");
	bgsnap_reader_close(r);
	close(fd);
	fg_free(&s);
	printf("ok: %llu records (%llu PAGES, %llu ZERO, %llu STATE)\n", (unsigned long long)c.records,
	       (unsigned long long)c.pages, (unsigned long long)c.zero, (unsigned long long)c.state);
	return 0;
}
