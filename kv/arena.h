/*
 * arena.h - the one mapping that holds every byte of bgsnap-kv's data (hash
 * table, entries, keys, values, expiry) at a fixed address, and the
 * allocator that carves it.  The allocator's whole state is the arena's
 * first page (struct arena_hdr), so a snapshot of the arena alone is a
 * snapshot of the database, and pointers inside it stay valid when it is
 * mapped again at the same address.
 */
#ifndef KV_ARENA_H
#define KV_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Inside the user range on x86-64, away from where the kernel and glibc
 * place mappings (below the stacks and libraries near 0x7f.., above PIE
 * binaries at 0x55..) and from AddressSanitizer's allocator, which owns
 * 0x600000000000-0x640000000000. */
#define ARENA_BASE ((uintptr_t)0x500000000000ull)
/* Bump when any structure stored in the arena changes shape: a snapshot of
 * another layout is refused. */
#define ARENA_LAYOUT 1u
#define ARENA_NCLASS 112
#define ARENA_MIN ((size_t)1 << 20)
#define ARENA_MAX ((size_t)1 << 40)

struct kv_entry;

/* The hash table's header (dict.c), kept with the allocator's. */
struct dict_hdr {
	struct kv_entry **table[2];
	uint64_t size[2];            /* buckets, a power of two, or 0          */
	uint64_t used[2];            /* entries                                */
	int64_t rehashidx;           /* next bucket of table 0 to move; -1: idle */
	uint64_t expires;            /* entries with an expiry                 */
	uint64_t seed;               /* hash seed, kept so a restore hashes alike */
};

struct arena_hdr {
	char magic[16];
	uint64_t layout;
	uint64_t size;               /* bytes mapped, header included           */
	uint64_t bump;               /* offset of the first never-used byte     */
	uint64_t used;               /* bytes in live chunks (INFO used_memory) */
	void *free_head[ARENA_NCLASS]; /* freed chunks of each size class       */
	struct dict_hdr dict;
};

/* Maps `size` bytes (a multiple of the page size) at ARENA_BASE, untouched,
 * with transparent huge pages if `thp`.  Returns the base or NULL with
 * errno (EEXIST: the address is taken). */
void *arena_map(size_t size, bool thp);
void arena_unmap(void *base, size_t size);
/* Writes a fresh header: an empty database. */
void arena_init(struct arena_hdr *a, size_t size, uint64_t seed);
/* The header of a restored arena looks like ours: 0 or -1 with a reason. */
int arena_check(const struct arena_hdr *a, size_t size, char *why, size_t why_len);

/* `n` payload bytes, 8-aligned, or NULL when the arena is full.  Memory
 * from a fresh chunk is zero, from a reused one is not. */
void *arena_alloc(struct arena_hdr *a, size_t n);
void arena_free(struct arena_hdr *a, void *p);
/* Payload bytes the chunk at p can hold (>= what was asked). */
size_t arena_capacity(const void *p);

static inline struct arena_hdr *arena_hdr_of(void *base)
{
	return base;
}

#endif
