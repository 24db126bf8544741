/*
 * content.h - the bench workload's content model (see workload.h), shared by
 * the writers (workload.c) and the oracle (oracle.c): they pick pages and
 * compute page words with this same code, so the oracle's replay is exact by
 * construction.  Inline: the writers call it once per step.
 */
#ifndef BGSNAP_BENCH_CONTENT_H
#define BGSNAP_BENCH_CONTENT_H

#include <stdint.h>

#include "workload.h"

#define GOLD 0x9e3779b97f4a7c15ull
#define WTAG 0xB5ull            /* top byte of a written first word */
#define WORDS (WL_PAGE / 8u)

static inline uint64_t mix64(uint64_t z)
{
	z ^= z >> 30;
	z *= 0xbf58476d1ce4e5b9ull;
	z ^= z >> 27;
	z *= 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z;
}

/* Lemire's multiply-shift: uniform enough, and no division per step. */
static inline uint64_t reduce(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static inline uint64_t page_mix(uint64_t page)
{
	return mix64(page * GOLD + 0x5bd1e995u) | 1u;
}

/* --fill text: one of 65536 eight-byte words ("lorem   ", ...), built from
 * the word's number: letters a..p, then spaces; a page is a random
 * sequence of them (16 bits of choice per 8 bytes: about 3x). */
static inline uint64_t text_word(uint64_t r)
{
	unsigned w = (unsigned)(r & 65535u), len = 3 + w % 5;
	uint64_t h = mix64(w + 1), v = 0;
	for (unsigned c = 0; c < 8; c++)
		v |= (uint64_t)(c < len ? 'a' + ((h >> (4 * c)) & 15u) : ' ') << (8 * c);
	return v;
}

/* Word i of page content `mix` before any write (zero pages aside). */
static inline uint64_t init_word(int fill, uint64_t mix, unsigned i)
{
	switch (fill) {
	case WL_FILL_RANDOM: return mix64(mix + (uint64_t)(i + 1) * GOLD);
	case WL_FILL_TEXT: return text_word(mix64(mix + (uint64_t)(i + 1) * GOLD));
	default: return mix + (uint64_t)(i + 1) * GOLD;
	}
}

static inline uint64_t write_word0(uint64_t k, unsigned t)
{
	return WTAG << 56 | ((k + 1) & ((1ull << 48) - 1)) << 8 | (t & 0xffu);
}

static inline int64_t decode_step(uint64_t w0)
{
	if (w0 >> 56 != WTAG)
		return -1;
	return (int64_t)((w0 >> 8) & ((1ull << 48) - 1)) - 1;
}

static inline uint64_t owned_pages(const struct wl_params *p, uint64_t domain, unsigned t)
{
	return t < domain ? (domain - 1 - t) / p->threads + 1 : 0;
}

/* One thread's page picks; writers and the oracle both step through this. */
struct pick {
	int pattern;
	uint64_t n, hot, base, j;
};

static inline void pick_init(struct pick *ps, const struct wl_params *p, uint64_t domain, unsigned t,
                      uint64_t k0)
{
	ps->pattern = p->pattern;
	ps->n = owned_pages(p, domain, t);
	ps->hot = ps->n / 32 ? ps->n / 32 : 1;
	ps->base = mix64(p->seed ^ ((uint64_t)(t + 1) * 0xd1b54a32d192ed03ull));
	ps->j = ps->n ? k0 % ps->n : 0;
}

/* Local index (0..n-1) of the page thread t writes at step k; k must advance
 * by one between calls (seq keeps a cursor). */
static inline uint64_t pick_next(struct pick *ps, uint64_t k)
{
	uint64_t r;
	switch (ps->pattern) {
	case WL_SEQ: {
		uint64_t j = ps->j;
		if (++ps->j == ps->n)
			ps->j = 0;
		return j;
	}
	case WL_HOT:
		r = mix64(ps->base + (k + 1) * GOLD);
		/* 230/256 ~ 90% of the steps go to the hot set */
		return reduce(r, (r & 0xffu) < 230u ? ps->hot : ps->n);
	default:
		r = mix64(ps->base + (k + 1) * GOLD);
		return reduce(r, ps->n);
	}
}

#endif
