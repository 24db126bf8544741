/*
 * reader_cov.c - the sequential pass's record of which pages it has seen:
 * one bit per page, in 4 KiB chunks allocated only where records land, so
 * that "every page exactly once" costs memory in proportion to what a
 * stream really sent.
 */
#include <errno.h>
#include <stdlib.h>

#include "format/reader_int.h"

#define COV_CHUNK_PAGES 32768u            /* one 4 KiB bitmap chunk */

/* A chunk whose every page has been seen: shared, never allocated, never
 * written.  Whole-chunk runs (long ZERO records of big sparse regions) then
 * cost no memory, so a crafted stream cannot make the bitmap grow faster
 * than two chunks (a run's partial first and last) per record it sends. */
static uint64_t cov_full_marker;
#define COV_FULL (&cov_full_marker)

static int cov_dup(bgsnap_reader *r, const struct rregion *g, uint64_t page, uint64_t off)
{
	return rd_bad(r, "record at offset %llu: page %llu of region '%s' appears twice", (ull)off,
	              (ull)(page - g->base), g->name);
}

/* Marks [first, first+count) of region g as seen; a page seen before is an
 * error.  Chunks of the bitmap are allocated only where records land. */
int rd_cov_mark(bgsnap_reader *r, const struct rregion *g, uint64_t first, uint64_t count, uint64_t off)
{
	if (!r->seq.cov) {
		r->seq.ncov = (size_t)(r->pages_total / COV_CHUNK_PAGES + 1);
		if (!(r->seq.cov = calloc(r->seq.ncov, sizeof(*r->seq.cov))))
			return err_set(&r->err, -ENOMEM, "out of memory");
	}
	uint64_t b = g->base + first, e = b + count;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = b; i < e;) {
			uint64_t c = i / COV_CHUNK_PAGES, in = i % COV_CHUNK_PAGES;
			if (r->seq.cov[c] == COV_FULL)
				return cov_dup(r, g, i, off);   /* only pass 0 can get here */
			if (in == 0 && e - i >= COV_CHUNK_PAGES) {
				if (pass == 0 && r->seq.cov[c]) {
					for (size_t k = 0; k < COV_CHUNK_PAGES / 64; k++)
						if (r->seq.cov[c][k])
							return cov_dup(r, g, i + 64 * k + (uint64_t)__builtin_ctzll(r->seq.cov[c][k]), off);
				}
				if (pass == 1) {
					free(r->seq.cov[c]);   /* allocated but empty: pass 0 saw no bit */
					r->seq.cov[c] = COV_FULL;
				}
				i += COV_CHUNK_PAGES;
				continue;
			}
			if (!r->seq.cov[c] && !(r->seq.cov[c] = calloc(COV_CHUNK_PAGES / 64, sizeof(uint64_t))))
				return err_set(&r->err, -ENOMEM, "out of memory");
			uint64_t *w = &r->seq.cov[c][in / 64];
			uint64_t bit = in % 64, n = 64 - bit < e - i ? 64 - bit : e - i;
			uint64_t mask = (n == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << n) - 1)) << bit;
			if (pass == 0 && (*w & mask))
				return cov_dup(r, g, i + (uint64_t)__builtin_ctzll(*w & mask) - bit, off);
			if (pass == 1)
				*w |= mask;
			i += n;
		}
	}
	r->seq.cov_count += count;
	return 0;
}

int rd_cov_first_missing(const bgsnap_reader *r, uint32_t *region, uint64_t *page)
{
	for (uint64_t i = 0; i < r->pages_total; i++) {
		const uint64_t *c = r->seq.cov ? r->seq.cov[i / COV_CHUNK_PAGES] : NULL;
		if (c == COV_FULL) {
			i = (i / COV_CHUNK_PAGES + 1) * COV_CHUNK_PAGES - 1;
			continue;
		}
		if (c && i % 64 == 0 && c[(i % COV_CHUNK_PAGES) / 64] == ~UINT64_C(0)) {
			i += 63;   /* a full word: skip it */
			continue;
		}
		if (!c || !(c[(i % COV_CHUNK_PAGES) / 64] >> (i % 64) & 1)) {
			uint32_t g = 0;
			while (g + 1 < r->region_count && r->regions[g + 1].base <= i)
				g++;
			*region = g;
			*page = i - r->regions[g].base;
			return 1;
		}
	}
	return 0;
}

void rd_cov_free(bgsnap_reader *r)
{
	for (size_t i = 0; i < r->seq.ncov; i++)
		if (r->seq.cov[i] != COV_FULL)
			free(r->seq.cov[i]);
	free(r->seq.cov);
	r->seq.cov = NULL;
	r->seq.ncov = 0;
	r->seq.cov_count = 0;
}
