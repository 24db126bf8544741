/*
 * dict.c - the key space (see dict.h).
 *
 * Two tables while growing: new keys go to table 1, lookups try both, and
 * every write moves one bucket of table 0 (the event loop's timer moves more
 * when idle).  Every pointer lives in the arena; nothing here is allocated
 * elsewhere, so the arena alone is the whole database.
 */
#include "dict.h"

#include <string.h>
#include <time.h>

#define DICT_INITIAL 16

uint64_t dict_expired_keys;

int64_t dict_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash_key(uint64_t seed, const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static bool expired(const struct kv_entry *e, int64_t now)
{
	return e->expire_ms && e->expire_ms <= now;
}

bool dict_rehash_step(struct arena_hdr *a, unsigned steps)
{
	struct dict_hdr *d = &a->dict;
	if (d->rehashidx < 0)
		return false;
	unsigned empty_budget = steps * 10;
	while (steps && (uint64_t)d->rehashidx < d->size[0]) {
		struct kv_entry **b = &d->table[0][d->rehashidx];
		if (!*b) {
			d->rehashidx++;
			if (--empty_budget == 0)
				return true;
			continue;
		}
		for (struct kv_entry *e = *b, *next; e; e = next) {
			next = e->next;
			uint64_t i = e->hash & (d->size[1] - 1);
			e->next = d->table[1][i];
			d->table[1][i] = e;
			d->used[0]--;
			d->used[1]++;
		}
		*b = NULL;
		d->rehashidx++;
		steps--;
	}
	if ((uint64_t)d->rehashidx < d->size[0])
		return true;
	arena_free(a, d->table[0]);
	d->table[0] = d->table[1];
	d->size[0] = d->size[1];
	d->used[0] = d->used[1];
	d->table[1] = NULL;
	d->size[1] = d->used[1] = 0;
	d->rehashidx = -1;
	return false;
}

static struct kv_entry **new_table(struct arena_hdr *a, uint64_t n)
{
	struct kv_entry **t = arena_alloc(a, n * sizeof(*t));
	if (t)
		memset(t, 0, n * sizeof(*t));
	return t;
}

/* Starts growing at a load factor of 1; a table that cannot grow (the
 * arena is full) just gets longer chains. */
static void maybe_grow(struct arena_hdr *a)
{
	struct dict_hdr *d = &a->dict;
	if (d->rehashidx >= 0)
		return;
	if (d->size[0] == 0) {
		if ((d->table[0] = new_table(a, DICT_INITIAL)))
			d->size[0] = DICT_INITIAL;
		return;
	}
	if (d->used[0] < d->size[0])
		return;
	struct kv_entry **t = new_table(a, d->size[0] * 2);
	if (!t)
		return;
	d->table[1] = t;
	d->size[1] = d->size[0] * 2;
	d->used[1] = 0;
	d->rehashidx = 0;
}

/* The link that points at key's entry (or at the NULL ending its chain in
 * the table new keys go to). */
static struct kv_entry **find_link(struct arena_hdr *a, const char *key, size_t klen, uint64_t h, int *table)
{
	struct dict_hdr *d = &a->dict;
	for (int t = 0; t < 2; t++) {
		if (!d->size[t])
			continue;
		struct kv_entry **l = &d->table[t][h & (d->size[t] - 1)];
		for (; *l; l = &(*l)->next)
			if ((*l)->hash == h && (*l)->klen == klen && !memcmp((*l)->data, key, klen)) {
				*table = t;
				return l;
			}
	}
	return NULL;
}

/* Removes the entry *l of table t and frees it. */
static void unlink_entry(struct arena_hdr *a, struct kv_entry **l, int t)
{
	struct dict_hdr *d = &a->dict;
	struct kv_entry *e = *l;
	*l = e->next;
	d->used[t]--;
	if (e->expire_ms)
		d->expires--;
	arena_free(a, e);
}

struct kv_entry *dict_find(struct arena_hdr *a, const char *key, size_t klen)
{
	uint64_t h = hash_key(a->dict.seed, key, klen);
	int t;
	struct kv_entry **l = find_link(a, key, klen, h, &t);
	if (!l)
		return NULL;
	if (expired(*l, dict_now_ms())) {
		unlink_entry(a, l, t);
		dict_expired_keys++;
		return NULL;
	}
	return *l;
}

static struct kv_entry *alloc_entry(struct arena_hdr *a, size_t klen, size_t vlen)
{
	if (klen > UINT32_MAX || vlen > UINT32_MAX)
		return NULL;
	return arena_alloc(a, sizeof(struct kv_entry) + klen + vlen);
}

struct kv_entry *dict_set(struct arena_hdr *a, const char *key, size_t klen, const char *val, size_t vlen,
                          bool keep_ttl)
{
	struct dict_hdr *d = &a->dict;
	dict_rehash_step(a, 1);
	uint64_t h = hash_key(d->seed, key, klen);
	int t;
	struct kv_entry **l = find_link(a, key, klen, h, &t);
	struct kv_entry *e;
	if (l && expired(*l, dict_now_ms())) {
		unlink_entry(a, l, t);
		dict_expired_keys++;
		l = NULL;
	}
	if (l) {
		e = dict_resize(a, *l, vlen);
		if (!e)
			return NULL;
	} else {
		maybe_grow(a);
		if (!(e = alloc_entry(a, klen, vlen)))
			return NULL;
		e->hash = h;
		e->klen = (uint32_t)klen;
		e->vlen = (uint32_t)vlen;
		e->expire_ms = 0;
		memcpy(e->data, key, klen);
		t = d->rehashidx >= 0 ? 1 : 0;
		struct kv_entry **b = &d->table[t][h & (d->size[t] - 1)];
		e->next = *b;
		*b = e;
		d->used[t]++;
	}
	if (!keep_ttl && e->expire_ms) {
		e->expire_ms = 0;
		d->expires--;
	}
	if (val)
		memcpy(entry_val(e), val, vlen);
	return e;
}

struct kv_entry *dict_resize(struct arena_hdr *a, struct kv_entry *e, size_t vlen)
{
	if (vlen > UINT32_MAX)
		return NULL;
	if (sizeof(*e) + e->klen + vlen <= arena_capacity(e)) {
		e->vlen = (uint32_t)vlen;
		return e;
	}
	int t;
	struct kv_entry **l = find_link(a, e->data, e->klen, e->hash, &t);
	struct kv_entry *n = alloc_entry(a, e->klen, vlen);
	if (!n)
		return NULL;
	size_t keep = e->vlen < vlen ? e->vlen : vlen;
	memcpy(n, e, sizeof(*e) + e->klen + keep);
	n->vlen = (uint32_t)vlen;
	*l = n;
	arena_free(a, e);
	return n;
}

int dict_del(struct arena_hdr *a, const char *key, size_t klen)
{
	dict_rehash_step(a, 1);
	uint64_t h = hash_key(a->dict.seed, key, klen);
	int t;
	struct kv_entry **l = find_link(a, key, klen, h, &t);
	if (!l)
		return 0;
	bool was_expired = expired(*l, dict_now_ms());
	unlink_entry(a, l, t);
	if (was_expired)
		dict_expired_keys++;
	return was_expired ? 0 : 1;
}

void dict_set_expire(struct arena_hdr *a, struct kv_entry *e, int64_t at_ms)
{
	if (!e->expire_ms && at_ms)
		a->dict.expires++;
	else if (e->expire_ms && !at_ms)
		a->dict.expires--;
	e->expire_ms = at_ms;
}

uint64_t dict_size(const struct arena_hdr *a)
{
	return a->dict.used[0] + a->dict.used[1];
}

unsigned dict_expire_cycle(struct arena_hdr *a, unsigned samples)
{
	static uint64_t cursor;
	struct dict_hdr *d = &a->dict;
	if (!d->expires || !d->size[0])
		return 0;
	int64_t now = dict_now_ms();
	unsigned deleted = 0, seen = 0;
	for (unsigned buckets = 0; buckets < samples * 20 && seen < samples; buckets++) {
		for (int t = 0; t < 2; t++) {
			if (!d->size[t])
				continue;
			struct kv_entry **l = &d->table[t][cursor & (d->size[t] - 1)];
			while (*l) {
				seen++;
				if (expired(*l, now)) {
					unlink_entry(a, l, t);
					dict_expired_keys++;
					deleted++;
				} else {
					l = &(*l)->next;
				}
			}
		}
		cursor++;
	}
	return deleted;
}

void dict_foreach(struct arena_hdr *a, int (*fn)(struct kv_entry *e, void *ctx), void *ctx)
{
	struct dict_hdr *d = &a->dict;
	int64_t now = dict_now_ms();
	for (int t = 0; t < 2; t++)
		for (uint64_t i = 0; i < d->size[t]; i++)
			for (struct kv_entry *e = d->table[t][i]; e; e = e->next)
				if (!expired(e, now) && fn(e, ctx))
					return;
}

static uint64_t rev64(uint64_t v)
{
	v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
	v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
	v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
	return __builtin_bswap64(v);
}

uint64_t dict_scan(struct arena_hdr *a, uint64_t cursor, unsigned count,
                   void (*fn)(struct kv_entry *e, void *ctx), void *ctx)
{
	struct dict_hdr *d = &a->dict;
	/* One table is enough for the cursor's guarantee: finish a rehash
	 * (its cost is bounded by the table, paid once per growth). */
	while (dict_rehash_step(a, 1024))
		;
	if (!d->size[0])
		return 0;
	uint64_t mask = d->size[0] - 1;
	int64_t now = dict_now_ms();
	unsigned seen = 0;
	do {
		for (struct kv_entry *e = d->table[0][cursor & mask]; e; e = e->next, seen++)
			if (!expired(e, now))
				fn(e, ctx);
		cursor |= ~mask;
		cursor = rev64(rev64(cursor) + 1);
	} while (cursor && seen < count);
	return cursor;
}
