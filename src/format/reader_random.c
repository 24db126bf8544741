/*
 * reader_random.c - random access to a file's pages through the index
 * (bgsnap_reader_read_page, bgsnap_reader_page_run,
 * bgsnap_reader_read_region).  Each region's run table was checked at open
 * to tile it exactly once; each record read is checked against its entry
 * and its crc before its data is trusted.  A CPAGES record is decoded whole
 * into the cache, so reading its pages one after the other decodes it once.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "format/crc32c.h"
#include "format/le.h"
#include "format/reader_int.h"

static const struct run *find_run(const struct rregion *g, uint64_t page)
{
	size_t lo = 0, hi = g->nruns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct run *x = &g->runs[mid];
		if (page < x->first)
			hi = mid;
		else if (page >= x->first + x->count)
			lo = mid + 1;
		else
			return x;
	}
	return NULL;
}

/* The PAGES or CPAGES record of run x, checked (and decoded), into the
 * cache (one record: a caller reading page after page of a run reads,
 * checks and decodes it once). */
static int cache_load(bgsnap_reader *r, const struct run *x)
{
	if (r->cache.valid && r->cache.off == x->offset)
		return 0;
	r->cache.valid = 0;
	int rc = rd_load_record(r, x->offset, x->span, x->kind, &r->cache.buf, &r->cache.cap);
	if (rc == 0)
		rc = rd_check_run_head(x, r->cache.buf, &r->err);
	r->cache.pages = r->cache.buf + RD_HEAD_LEN;
	if (rc == 0 && x->kind == FMT_REC_CPAGES)
		rc = rd_decode(&r->cache.dec, x, r->cache.buf + RD_HEAD_LEN, x->span - RD_HEAD_LEN - FMT_REC_CRC_LEN,
		               &r->cache.pages, &r->err);
	if (rc < 0)
		return rc;
	r->cache.valid = 1;
	r->cache.off = x->offset;
	return 0;
}

/* Where `page` of `region` is: the link reader holding it and its run,
 * and the stretch [*first, *first + *count) of the image around it that
 * the same run holds.  0, -ESPIPE on a stream, -ENOENT outside the
 * regions, -EBADMSG when the index leaves the page out. */
static int lookup_run(bgsnap_reader *r, unsigned region, uint64_t page, bgsnap_reader **lr, const struct run **out,
                      uint64_t *first, uint64_t *count)
{
	if (r->stream)
		return -ESPIPE;
	if (region >= r->region_count || page >= r->regions[region].pages)
		return -ENOENT;
	err_clear(&r->err);
	*lr = r;
	if (r->nparents) {
		const struct seg *s = rd_chain_seg(r, region, page);
		if (!s)
			return rd_bad(r, "page %llu of region '%s' is in no file of the chain", (ull)page,
			              r->regions[region].name);
		*lr = rd_link(r, s->link);
		*out = s->run;
		*first = s->first;
		*count = s->count;
		return 0;
	}
	*out = find_run(&r->regions[region], page);
	if (!*out)
		return rd_bad(r, "page %llu of region '%s' is in no record", (ull)page, r->regions[region].name);
	*first = (*out)->first;
	*count = (*out)->count;
	return 0;
}

int bgsnap_reader_read_page(bgsnap_reader *r, unsigned region, uint64_t page, void *dst)
{
	const struct run *x;
	bgsnap_reader *l;
	uint64_t first, count;
	int rc = lookup_run(r, region, page, &l, &x, &first, &count);
	if (rc < 0)
		return rc;
	if (x->kind == FMT_REC_ZERO) {
		memset(dst, 0, r->page_size);
		return 0;
	}
	rc = cache_load(l, x);
	if (rc < 0)
		return rd_link_err(r, l, rc);
	memcpy(dst, l->cache.pages + (page - x->first) * r->page_size, r->page_size);
	return 0;
}

int bgsnap_reader_page_run(bgsnap_reader *r, unsigned region, uint64_t page, struct bgsnap_record *rec)
{
	if (!r || !rec)
		return -EINVAL;
	const struct run *x;
	bgsnap_reader *l;
	uint64_t first, count;
	int rc = lookup_run(r, region, page, &l, &x, &first, &count);
	if (rc < 0)
		return rc;
	memset(rec, 0, sizeof(*rec));
	rec->kind = x->kind == FMT_REC_ZERO ? BGSNAP_REC_ZERO : BGSNAP_REC_PAGES;
	rec->region = region;
	rec->first_page = first;
	rec->count = count;
	rec->offset = x->offset;
	return 0;
}

/* A chain's region: segment by segment, each from its link's record
 * (checked, decoded) through that link's cache.  Segments tile the region
 * and lie inside it (reader_chain.c), so this stays in dst. */
static int read_region_chain(bgsnap_reader *r, const struct rregion *g, uint8_t *d, unsigned flags)
{
	for (size_t k = 0; k < g->nsegs; k++) {
		const struct seg *s = &g->segs[k];
		uint8_t *at = d + s->first * r->page_size;
		size_t n = (size_t)(s->count * r->page_size);
		if (s->run->kind == FMT_REC_ZERO) {
			if (!(flags & BGSNAP_READ_DST_ZEROED))
				memset(at, 0, n);
			continue;
		}
		bgsnap_reader *l = rd_link(r, s->link);
		int rc = cache_load(l, s->run);
		if (rc < 0)
			return rd_link_err(r, l, rc);
		memcpy(at, l->cache.pages + (s->first - s->run->first) * r->page_size, n);
	}
	return 0;
}

/* All of iov[0..2] (`want` bytes) from the record of run x. */
static int preadv_run(bgsnap_reader *r, const struct run *x, struct iovec *iov, size_t want)
{
	size_t got = 0;
	while (got < want) {
		ssize_t m = preadv(r->fd, iov, 3, (off_t)(x->offset + got));
		if (m < 0 && errno == EINTR)
			continue;
		if (m < 0)
			return err_sys(&r->err, -errno, "reading the record at offset %llu", (ull)x->offset);
		if (m == 0)
			return rd_bad(r, "truncated: file ends at offset %llu inside PAGES record starting at offset %llu",
			              (ull)(x->offset + got), (ull)x->offset);
		got += (size_t)m;
		/* Advance the iovecs past what was read. */
		size_t skip = (size_t)m;
		for (int i = 0; i < 3 && skip; i++) {
			size_t t = skip < iov[i].iov_len ? skip : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + t;
			iov[i].iov_len -= t;
			skip -= t;
		}
	}
	return 0;
}

int bgsnap_reader_read_region(bgsnap_reader *r, unsigned region, void *dst, size_t dst_len, unsigned flags)
{
	if (r->stream)
		return -ESPIPE;
	if (region >= r->region_count)
		return -ENOENT;
	const struct rregion *g = &r->regions[region];
	if (dst_len != g->size)
		return -EINVAL;
	err_clear(&r->err);
	if (r->incremental && !r->nparents)
		return err_set(&r->err, -EINVAL, "an incremental file read without its chain holds only some pages of "
		               "region '%s'", g->name);
	uint8_t *d = dst;
	if (r->nparents)
		return read_region_chain(r, g, d, flags);
	for (size_t k = 0; k < g->nruns; k++) {
		const struct run *x = &g->runs[k];
		/* Checked at open: first + count <= pages, so this stays in dst. */
		uint8_t *at = d + x->first * r->page_size;
		size_t n = (size_t)(x->count * r->page_size);
		if (x->kind == FMT_REC_ZERO) {
			if (!(flags & BGSNAP_READ_DST_ZEROED))
				memset(at, 0, n);
			continue;
		}
		if (x->kind == FMT_REC_CPAGES) {
			int rc = cache_load(r, x);
			if (rc < 0)
				return rc;
			memcpy(at, r->cache.pages, n);
			continue;
		}
		/* The data goes straight to dst: header and crc around it. */
		uint8_t h[RD_HEAD_LEN], crcb[4];
		struct iovec iov[3] = { { h, sizeof(h) }, { at, n }, { crcb, 4 } };
		int rc = preadv_run(r, x, iov, sizeof(h) + n + 4);
		if (rc == 0)
			rc = rd_check_run_head(x, h, &r->err);
		if (rc == 0)
			rc = rd_check_run_crc(x, le32_load(crcb), crc32c(crc32c(0, h, sizeof(h)), at, n), &r->err);
		if (rc < 0)
			return rc;
	}
	return 0;
}
