/*
 * dict.h - the key space: a chained hash table in the arena, grown by
 * incremental rehashing (a few buckets moved per operation, so no request
 * waits for a whole table), with a per-key expiry.
 */
#ifndef KV_DICT_H
#define KV_DICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct kv_entry {
	struct kv_entry *next;
	int64_t expire_ms;           /* unix ms; 0: never                      */
	uint64_t hash;
	uint32_t klen;
	uint32_t vlen;
	char data[];                 /* key, then value                        */
};

static inline char *entry_val(struct kv_entry *e)
{
	return e->data + e->klen;
}

/* Milliseconds since the epoch (expiry is absolute, as Redis keeps it). */
int64_t dict_now_ms(void);

/* The live entry for key, or NULL (an expired one is deleted on the way). */
struct kv_entry *dict_find(struct arena_hdr *a, const char *key, size_t klen);
/*
 * Sets key to a value of vlen bytes (copied from val when val is not NULL,
 * else left for the caller to fill through entry_val), keeping the entry's
 * expiry if keep_ttl, else clearing it.  Returns the entry, or NULL when
 * the arena is full (the old value, if any, is left as it was).
 */
struct kv_entry *dict_set(struct arena_hdr *a, const char *key, size_t klen, const char *val, size_t vlen,
                          bool keep_ttl);
/* Resizes an entry's value to vlen bytes keeping the first min(old, new)
 * bytes; the entry may move.  NULL when the arena is full (unchanged). */
struct kv_entry *dict_resize(struct arena_hdr *a, struct kv_entry *e, size_t vlen);
/* 1 if the key was there and is deleted, else 0. */
int dict_del(struct arena_hdr *a, const char *key, size_t klen);
void dict_set_expire(struct arena_hdr *a, struct kv_entry *e, int64_t at_ms);
uint64_t dict_size(const struct arena_hdr *a);

/* Moves up to `steps` buckets of an ongoing rehash; true while one runs. */
bool dict_rehash_step(struct arena_hdr *a, unsigned steps);
/* Deletes expired keys among about `samples` entries; returns how many. */
unsigned dict_expire_cycle(struct arena_hdr *a, unsigned samples);
/* Counter of keys deleted because they expired. */
extern uint64_t dict_expired_keys;

/* Calls fn on every live entry (KEYS); fn returns non-zero to stop. */
void dict_foreach(struct arena_hdr *a, int (*fn)(struct kv_entry *e, void *ctx), void *ctx);
/*
 * SCAN: visits the entries of the buckets from `cursor` on, about `count`
 * entries, and returns the next cursor (0 at the end).  Reverse-binary
 * cursors, so a table that grows between calls still yields every key
 * that was present throughout at least once.
 */
uint64_t dict_scan(struct arena_hdr *a, uint64_t cursor, unsigned count,
                   void (*fn)(struct kv_entry *e, void *ctx), void *ctx);

#endif
