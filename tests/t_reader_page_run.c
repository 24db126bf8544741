/*
 * t_reader_page_run - bgsnap_reader_page_run over a real snapshot (stop
 * method) of a region with zero stretches and data pages: going run by run
 * from page 0 visits every page exactly once, each run holds the page asked
 * for, ZERO runs cover exactly the zero pages (read_page gives zeros there)
 * and PAGES runs the others; the total of ZERO runs matches the region's
 * pages_zero.  Refusals: -ENOENT past the region or for a missing region,
 * -EINVAL for NULL arguments, -ESPIPE on a stream.
 * timeout: 60
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "snaptest.h"
#include "testutil.h"

#define PAGES 600u

/* Pages [100, 400) zero, every 7th other page zero, the rest data. */
static int page_is_zero(uint64_t p)
{
	return (p >= 100 && p < 400) || p % 7 == 3;
}

int main(void)
{
	uint8_t *mem = tu_map_anon(PAGES * TU_PAGE);
	for (uint64_t p = 0; p < PAGES; p++)
		if (!page_is_zero(p))
			memset(mem + p * TU_PAGE, (int)(p % 250) + 1, TU_PAGE);
	char path[600];
	snprintf(path, sizeof(path), "%s/r.bgs", tu_tmpdir());
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_STOP, 0);
	st_add_region(e, "ram", mem, PAGES * TU_PAGE);
	st_snapshot_ok(e, path);
	bgsnap_destroy(e);

	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_region_info ri;
	CHECK_RC(bgsnap_reader_region(r, 0, &ri, sizeof ri), 0, "region 0");

	tu_phase("runs tile the region");
	static uint8_t page[TU_PAGE], zero[TU_PAGE];
	uint64_t zeros = 0, runs = 0;
	for (uint64_t p = 0; p < PAGES;) {
		struct bgsnap_record rec;
		memset(&rec, 0xa5, sizeof(rec));
		CHECK_RC(bgsnap_reader_page_run(r, 0, p, &rec), 0, "page_run(%llu): %s", (unsigned long long)p,
		         bgsnap_reader_errmsg(r));
		CHECK(rec.first_page == p, "run for page %llu starts at %llu: runs do not tile the region",
		      (unsigned long long)p, (unsigned long long)rec.first_page);
		CHECK(rec.count >= 1 && rec.first_page + rec.count <= PAGES, "run [%llu, +%llu) out of the region",
		      (unsigned long long)rec.first_page, (unsigned long long)rec.count);
		CHECK(rec.region == 0 && rec.data == NULL && rec.name == NULL && rec.len == 0 && rec.offset > 0,
		      "run fields: region %u data %p name %p len %zu offset %llu", rec.region, rec.data,
		      (const void *)rec.name, rec.len, (unsigned long long)rec.offset);
		CHECK(rec.kind == BGSNAP_REC_ZERO || rec.kind == BGSNAP_REC_PAGES, "kind %d", rec.kind);
		for (uint64_t q = p; q < p + rec.count; q++) {
			CHECK(page_is_zero(q) == (rec.kind == BGSNAP_REC_ZERO), "page %llu is %s but in a %s run",
			      (unsigned long long)q, page_is_zero(q) ? "zero" : "data",
			      rec.kind == BGSNAP_REC_ZERO ? "ZERO" : "PAGES");
			struct bgsnap_record in;
			CHECK_RC(bgsnap_reader_page_run(r, 0, q, &in), 0, "page_run(%llu)", (unsigned long long)q);
			CHECK(in.first_page == rec.first_page && in.count == rec.count,
			      "page %llu inside a run is given another run", (unsigned long long)q);
			CHECK_RC(bgsnap_reader_read_page(r, 0, q, page), 0, "read_page(%llu)", (unsigned long long)q);
			CHECK(!memcmp(page, rec.kind == BGSNAP_REC_ZERO ? zero : mem + q * TU_PAGE, TU_PAGE),
			      "page %llu differs", (unsigned long long)q);
		}
		if (rec.kind == BGSNAP_REC_ZERO)
			zeros += rec.count;
		runs++;
		p += rec.count;
	}
	CHECK(zeros == ri.pages_zero, "ZERO runs cover %llu pages, the region says %llu zero",
	      (unsigned long long)zeros, (unsigned long long)ri.pages_zero);
	CHECK(runs < PAGES, "%llu runs for %u pages: nothing was grouped", (unsigned long long)runs, PAGES);

	tu_phase("refusals");
	struct bgsnap_record rec;
	CHECK_RC(bgsnap_reader_page_run(r, 0, PAGES, &rec), -ENOENT, "page past the region");
	CHECK_RC(bgsnap_reader_page_run(r, 0, UINT64_MAX, &rec), -ENOENT, "page UINT64_MAX");
	CHECK_RC(bgsnap_reader_page_run(r, 1, 0, &rec), -ENOENT, "missing region");
	CHECK_RC(bgsnap_reader_page_run(r, 0, 0, NULL), -EINVAL, "NULL record");
	CHECK_RC(bgsnap_reader_page_run(NULL, 0, 0, &rec), -EINVAL, "NULL reader");
	bgsnap_reader_close(r);

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", path);
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "open_stream: %s", err);
	CHECK_RC(bgsnap_reader_page_run(r, 0, 0, &rec), -ESPIPE, "page_run on a stream");
	bgsnap_reader_close(r);
	close(fd);
	printf("PASS: %llu runs, %llu zero pages\n", (unsigned long long)runs, (unsigned long long)zeros);
	return 0;
}
