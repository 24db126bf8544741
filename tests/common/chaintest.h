/*
 * chaintest.h - helpers for tests of chained snapshots: an engine with
 * options.chain, and a chain's image built by applying its files oldest
 * to newest (each file's records over the image so far), the way a chain
 * is defined to read.
 */
#ifndef BGSNAP_CHAINTEST_H
#define BGSNAP_CHAINTEST_H

#include "snaptest.h"

static inline bgsnap_engine *ct_engine(int method)
{
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = method;
	o.copy_buffer_bytes = 1u << 20;
	o.chain = 1;
	bgsnap_engine *e = NULL;
	int r = bgsnap_create(&e, &o);
	if (r < 0 || !e)
		FAIL("bgsnap_create(method %s, chain): %s", bgsnap_method_name(method), tu_errname(r));
	return e;
}

/* Applies the page records of `path` over images[region] (each the
 * region's size); counts the pages of each region it held in held[]. */
static inline void ct_apply(const char *path, uint8_t **images, const size_t *sizes, unsigned nreg,
                            uint64_t *held)
{
	char err[512] = "";
	bgsnap_reader *rd = NULL;
	int r = bgsnap_reader_open(&rd, path, err, sizeof(err));
	/* A library whose reader predates chains cannot check them. */
	if (r == -EBADMSG && strstr(err, "unsupported format version 3"))
		SKIP("this library's reader cannot read format version 3 (chains): %s", err);
	if (r < 0)
		FAIL("bgsnap_reader_open(%s): %s: %s", path, tu_errname(r), err);
	struct bgsnap_record rec;
	for (;;) {
		r = bgsnap_reader_next(rd, &rec);
		if (r < 0)
			FAIL("bgsnap_reader_next(%s): %s: %s", path, tu_errname(r), bgsnap_reader_errmsg(rd));
		if (rec.kind == BGSNAP_REC_END)
			break;
		if (rec.kind != BGSNAP_REC_PAGES && rec.kind != BGSNAP_REC_ZERO)
			continue;
		CHECK(rec.region < nreg && (rec.first_page + rec.count) * TU_PAGE <= sizes[rec.region],
		      "%s: record out of the regions", path);
		uint8_t *dst = images[rec.region] + rec.first_page * TU_PAGE;
		if (rec.kind == BGSNAP_REC_PAGES)
			memcpy(dst, rec.data, rec.count * TU_PAGE);
		else
			memset(dst, 0, rec.count * TU_PAGE);
		held[rec.region] += rec.count;
	}
	bgsnap_reader_close(rd);
}

/* Fails unless `got` equals `want`, naming the first differing page. */
static inline void ct_check_equal(const char *what, const uint8_t *got, const uint8_t *want, size_t len)
{
	for (size_t p = 0; p < len / TU_PAGE; p++)
		if (memcmp(got + p * TU_PAGE, want + p * TU_PAGE, TU_PAGE))
			FAIL("%s: page %zu differs from the pause-instant content", what, p);
}

static inline struct bgsnap_stats ct_stats(bgsnap_engine *e)
{
	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(e, &s, sizeof s), 0, "get_stats");
	return s;
}

#endif
