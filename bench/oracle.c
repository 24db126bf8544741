/*
 * oracle.c - the bench's pause-instant oracle (replays each writer's picks
 * up to the step counts recorded at the pause and checks pages against the
 * content that gives) and the "bench.oracle" state blob that carries those
 * counts in the snapshot.  The content model is content.h's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/le.h"
#include "content.h"
#include "oracle.h"

/* ------------------------------------------------------------------------ */
/* State blob: "BGBO", version, threads, pattern, seed, npages, steps[].     */

#define BLOB_MAGIC 0x4f424742u   /* "BGBO" little-endian */
#define BLOB_HDR 32u

size_t wl_blob_size(unsigned threads)
{
	return BLOB_HDR + 8u * threads;
}

void wl_blob_encode(void *buf, const struct wl_params *p, const uint64_t *steps)
{
	uint8_t *b = buf;
	put_le32(b, BLOB_MAGIC);
	put_le32(b + 4, 1);
	put_le32(b + 8, p->threads);
	/* The fill in the pattern word's upper half: 0 (mixed) keeps the blob
	 * of a run without --fill as it always was. */
	put_le32(b + 12, (uint32_t)p->pattern | (uint32_t)p->fill << 16);
	put_le64(b + 16, p->seed);
	put_le64(b + 24, p->npages);
	for (unsigned t = 0; t < p->threads; t++)
		put_le64(b + BLOB_HDR + 8u * t, steps[t]);
}

int wl_blob_add(bgsnap_state *st, const struct wl_params *p, const uint64_t *steps)
{
	uint8_t blob[BLOB_HDR + 8 * WL_MAX_THREADS];
	size_t n = wl_blob_size(p->threads);
	if (n > sizeof(blob))
		return -1;
	wl_blob_encode(blob, p, steps);
	return bgsnap_state_add(st, WL_BLOB_NAME, blob, n) == 0 ? 0 : -1;
}

int wl_blob_decode(const void *buf, size_t len, struct wl_params *p, uint64_t *steps)
{
	const uint8_t *b = buf;
	if (len < BLOB_HDR || get_le32(b) != BLOB_MAGIC || get_le32(b + 4) != 1)
		return -EBADMSG;
	p->threads = get_le32(b + 8);
	p->pattern = (int)(get_le32(b + 12) & 0xffffu);
	p->fill = (int)(get_le32(b + 12) >> 16);
	p->seed = get_le64(b + 16);
	p->npages = get_le64(b + 24);
	if (p->threads < 1 || p->threads > WL_MAX_THREADS || !wl_pattern_name(p->pattern) || !wl_fill_name(p->fill) ||
	    len != wl_blob_size(p->threads))
		return -EBADMSG;
	for (unsigned t = 0; t < p->threads; t++)
		steps[t] = get_le64(b + BLOB_HDR + 8u * t);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Oracle.                                                                   */

struct wl_oracle {
	struct wl_params p;
	uint64_t domain;
	uint64_t *last;                    /* per page: step+1 of last write, 0 none */
	uint64_t done[WL_MAX_THREADS];     /* steps replayed per thread           */
};

int wl_oracle_create(wl_oracle **out, const struct wl_params *p)
{
	*out = NULL;
	if (p->threads < 1 || p->threads > WL_MAX_THREADS || !wl_pattern_name(p->pattern) ||
	    wl_domain(p) < p->threads || p->npages >= (1ull << 40))
		return -EINVAL;
	struct wl_oracle *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->p = *p;
	o->domain = wl_domain(p);
	o->last = calloc(p->npages, sizeof(*o->last));
	if (!o->last) {
		free(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

void wl_oracle_destroy(wl_oracle *o)
{
	if (!o)
		return;
	free(o->last);
	free(o);
}

int wl_oracle_advance(wl_oracle *o, const uint64_t *steps)
{
	for (unsigned t = 0; t < o->p.threads; t++)
		if (steps[t] < o->done[t])
			return -EINVAL;
	for (unsigned t = 0; t < o->p.threads; t++) {
		struct pick ps;
		pick_init(&ps, &o->p, o->domain, t, o->done[t]);
		uint64_t *last = o->last;
		const uint64_t nthr = o->p.threads;
		for (uint64_t k = o->done[t]; k < steps[t]; k++)
			last[t + pick_next(&ps, k) * nthr] = k + 1;
		o->done[t] = steps[t];
	}
	return 0;
}

static inline uint64_t load_word(const uint8_t *d, unsigned i)
{
	uint64_t v;
	memcpy(&v, d + 8u * i, 8);
	return v;
}

static bool check(const wl_oracle *o, uint64_t page, const uint8_t *d, struct wl_mismatch *mm)
{
	uint64_t last = o->last[page];
	bool zero = wl_page_init_zero(&o->p, page);
	uint64_t m = page_mix(page);
	uint64_t w0 = 0, wlast = 0;
	if (last) {
		w0 = write_word0(last - 1, (unsigned)(page % o->p.threads));
		wlast = w0 ^ m;
	}
	for (unsigned i = 0; i < WORDS; i++) {
		uint64_t exp;
		if (last && i == 0)
			exp = w0;
		else if (last && i == WORDS - 1)
			exp = wlast;
		else
			exp = zero ? 0 : init_word(o->p.fill, m, i);
		uint64_t got = d ? load_word(d, i) : 0;
		if (got != exp) {
			if (mm) {
				uint64_t f0 = d ? load_word(d, 0) : 0;
				mm->page = page;
				mm->expected_step = (int64_t)last - 1;
				mm->found_word0 = f0;
				mm->found_step = decode_step(f0);
				mm->word = i;
			}
			return false;
		}
	}
	return true;
}

bool wl_oracle_check_page(const wl_oracle *o, uint64_t page, const void *data,
                          struct wl_mismatch *mm)
{
	if (page >= o->p.npages) {
		if (mm)
			memset(mm, 0, sizeof(*mm)), mm->page = page, mm->expected_step = -1;
		return false;
	}
	return check(o, page, data, mm);
}

bool wl_oracle_check_zero(const wl_oracle *o, uint64_t page, struct wl_mismatch *mm)
{
	if (page >= o->p.npages) {
		if (mm)
			memset(mm, 0, sizeof(*mm)), mm->page = page, mm->expected_step = -1;
		return false;
	}
	return check(o, page, NULL, mm);
}
