/*
 * arena.c - the fixed-address mapping and its size-class allocator.
 *
 * Chunks are carved from a bump pointer and, once freed, kept on one free
 * list per size class (no splitting or merging: sizes grow by at most a
 * quarter per class, which bounds the waste).  Each chunk starts with an
 * 8-byte header holding its class; the payload follows.  Nothing but the
 * header page and the chunks themselves is ever written, so the allocator
 * survives a snapshot and restore of the arena unchanged.
 */
#include "arena.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static const char arena_magic[16] = "bgsnap-kv arena";

#define CHUNK_HDR 8u

/* Total chunk size of class c: 16..128 by 16, then four steps per power
 * of two. */
static uint64_t class_size(unsigned c)
{
	if (c < 8)
		return (uint64_t)(c + 1) * 16;
	uint64_t base = (uint64_t)128 << ((c - 8) / 4);
	return base + base / 4 * ((c - 8) % 4 + 1);
}

static int size_class(uint64_t total)
{
	if (total <= 128)
		return total <= 16 ? 0 : (int)((total + 15) / 16) - 1;
	unsigned c = 8;
	/* Skip whole powers of two first, then step. */
	while (c + 4 < ARENA_NCLASS && class_size(c + 3) < total)
		c += 4;
	while (c < ARENA_NCLASS && class_size(c) < total)
		c++;
	return c < ARENA_NCLASS ? (int)c : -1;
}

void *arena_map(size_t size, bool thp)
{
	void *p = mmap((void *)ARENA_BASE, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (p != (void *)ARENA_BASE) {
		/* A kernel that ignores MAP_FIXED_NOREPLACE (before 4.17). */
		munmap(p, size);
		errno = EEXIST;
		return NULL;
	}
	/* Huge pages make the write-protect in BGSAVE's pause ~100x cheaper
	 * than 4 KiB pages (the loop's stop goes from tens of ms per GiB to a
	 * few); advice only: without THP the arena simply stays 4 KiB. */
	if (thp)
		(void)madvise(p, size, MADV_HUGEPAGE);
	return p;
}

void arena_unmap(void *base, size_t size)
{
	if (base)
		munmap(base, size);
}

void arena_init(struct arena_hdr *a, size_t size, uint64_t seed)
{
	memset(a, 0, sizeof(*a));
	memcpy(a->magic, arena_magic, sizeof(arena_magic));
	a->layout = ARENA_LAYOUT;
	a->size = size;
	a->bump = (sizeof(*a) + 4095) & ~(uint64_t)4095;
	a->dict.rehashidx = -1;
	a->dict.seed = seed;
}

int arena_check(const struct arena_hdr *a, size_t size, char *why, size_t why_len)
{
	if (memcmp(a->magic, arena_magic, sizeof(arena_magic))) {
		snprintf(why, why_len, "the arena does not start with a bgsnap-kv header");
		return -1;
	}
	if (a->layout != ARENA_LAYOUT || a->size != size || a->bump > size || a->bump < sizeof(*a) ||
	    a->used > size) {
		snprintf(why, why_len, "arena header of layout %llu, %llu bytes (bump %llu): this build has layout %u, %zu bytes",
		         (unsigned long long)a->layout, (unsigned long long)a->size, (unsigned long long)a->bump,
		         ARENA_LAYOUT, size);
		return -1;
	}
	return 0;
}

void *arena_alloc(struct arena_hdr *a, size_t n)
{
	if (n > a->size)
		return NULL;
	uint64_t total = ((uint64_t)n + CHUNK_HDR + 7) & ~(uint64_t)7;
	int c = size_class(total);
	if (c < 0)
		return NULL;
	char *chunk = a->free_head[c];
	if (chunk) {
		memcpy(&a->free_head[c], chunk + CHUNK_HDR, sizeof(void *));
	} else {
		uint64_t sz = class_size((unsigned)c);
		if (sz > a->size - a->bump)
			return NULL;
		chunk = (char *)a + a->bump;
		a->bump += sz;
	}
	uint64_t tag = (uint64_t)c;
	memcpy(chunk, &tag, sizeof(tag));
	a->used += class_size((unsigned)c);
	return chunk + CHUNK_HDR;
}

void arena_free(struct arena_hdr *a, void *p)
{
	if (!p)
		return;
	char *chunk = (char *)p - CHUNK_HDR;
	uint64_t c;
	memcpy(&c, chunk, sizeof(c));
	memcpy(p, &a->free_head[c], sizeof(void *));
	a->free_head[c] = chunk;
	a->used -= class_size((unsigned)c);
}

size_t arena_capacity(const void *p)
{
	uint64_t c;
	memcpy(&c, (const char *)p - CHUNK_HDR, sizeof(c));
	return (size_t)(class_size((unsigned)c) - CHUNK_HDR);
}
