/*
 * restore.c - opening the arena at startup: a fresh, empty one, or the one
 * in a snapshot (--restore FILE), eagerly or lazily (--lazy).  A snapshot is
 * accepted only if its state blob names this build's arena layout, base
 * address and size, and its region "arena" has that size: a snapshot of
 * another program, another build layout or another --maxmemory is refused
 * before a byte of it is mapped.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli/clock.h"
#include "kv.h"

/* The value of "name=" in the blob, as a number; -1 if absent. */
static int blob_field(const char *blob, size_t len, const char *name, uint64_t *out)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < len;) {
		const char *line = blob + i;
		const char *end = memchr(line, '\n', len - i);
		size_t ll = end ? (size_t)(end - line) : len - i;
		if (ll > nl && !memcmp(line, name, nl) && line[nl] == '=') {
			char num[32];
			size_t vl = ll - nl - 1;
			if (vl == 0 || vl >= sizeof(num))
				return -1;
			memcpy(num, line + nl + 1, vl);
			num[vl] = 0;
			char *e;
			errno = 0;
			*out = strtoull(num, &e, 0);
			return *e || errno ? -1 : 0;
		}
		i += ll + 1;
	}
	return -1;
}

/* The snapshot is one of ours, for this arena: its region index and
 * length (the arena's used part), or -1 after saying why. */
static int check_snapshot(struct server *s, bgsnap_reader *r, const char *path, uint64_t *region_len)
{
	const void *data;
	size_t len;
	uint64_t layout, base, bytes;
	if (bgsnap_reader_find_state(r, KV_STATE_NAME, &data, &len) < 0 || len < strlen(KV_STATE_MAGIC) ||
	    memcmp(data, KV_STATE_MAGIC, strlen(KV_STATE_MAGIC))) {
		fprintf(stderr, "bgsnap-kv: %s: not a bgsnap-kv snapshot (no \"kv\" state blob)\n", path);
		return -1;
	}
	if (blob_field(data, len, "layout", &layout) < 0 || blob_field(data, len, "arena_base", &base) < 0 ||
	    blob_field(data, len, "arena_bytes", &bytes) < 0) {
		fprintf(stderr, "bgsnap-kv: %s: the \"kv\" state blob lacks layout, arena_base or arena_bytes\n", path);
		return -1;
	}
	if (layout != ARENA_LAYOUT || base != ARENA_BASE) {
		fprintf(stderr,
		        "bgsnap-kv: %s: written by a build with arena layout %" PRIu64 " at 0x%" PRIx64
		        "; this build has layout %u at 0x%" PRIxPTR ": refused\n",
		        path, layout, base, ARENA_LAYOUT, ARENA_BASE);
		return -1;
	}
	if (bytes != s->cfg.maxmemory) {
		fprintf(stderr, "bgsnap-kv: %s: the arena is %" PRIu64 " bytes, --maxmemory is %zu: refused (start with --maxmemory %" PRIu64 ")\n",
		        path, bytes, s->cfg.maxmemory, bytes);
		return -1;
	}
	int idx = bgsnap_reader_find_region(r, "arena");
	struct bgsnap_region_info ri;
	if (idx < 0 || bgsnap_reader_region(r, (unsigned)idx, &ri, sizeof ri) < 0 || ri.size > bytes ||
	    ri.size < 4096 || ri.addr != base) {
		fprintf(stderr, "bgsnap-kv: %s: no region \"arena\" of at most %" PRIu64 " bytes at 0x%" PRIx64 ": refused\n",
		        path, bytes, base);
		return -1;
	}
	*region_len = ri.size;
	return idx;
}

/* The arena size the snapshot was taken with, for a --restore without
 * --maxmemory. */
static void adopt_size(struct server *s, bgsnap_reader *r)
{
	const void *data;
	size_t len;
	uint64_t bytes;
	if (bgsnap_reader_find_state(r, KV_STATE_NAME, &data, &len) == 0 && blob_field(data, len, "arena_bytes", &bytes) == 0 &&
	    bytes >= ARENA_MIN && bytes <= ARENA_MAX && bytes % 4096 == 0)
		s->cfg.maxmemory = (size_t)bytes;
}

static int restore_arena(struct server *s, bool maxmemory_given)
{
	const char *path = s->cfg.restore;
	char err[512];
	bgsnap_reader *r;
	uint64_t t0 = mono_ns();
	if (bgsnap_reader_open(&r, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "bgsnap-kv: %s: %s\n", path, err);
		return -1;
	}
	if (!maxmemory_given)
		adopt_size(s, r);
	uint64_t region_len = 0;
	int idx = check_snapshot(s, r, path, &region_len);
	void *base = idx < 0 ? NULL : arena_map(s->cfg.maxmemory, s->cfg.thp);
	if (idx >= 0 && !base)
		fprintf(stderr, "bgsnap-kv: cannot map the arena at 0x%" PRIxPTR ": %s\n", ARENA_BASE, strerror(errno));
	if (!base) {
		bgsnap_reader_close(r);
		return -1;
	}
	/* The pages past the saved part stay fresh: zero, as they were. */
	struct bgsnap_restore_target t = { .region = (unsigned)idx, .dst = base, .len = (size_t)region_len };
	int rc;
	if (s->cfg.lazy) {
		rc = bgsnap_lazy_restore_start(&s->ps.lazy, r, &t, 1, err, sizeof(err));
		if (rc == 0)
			s->ps.lazy_reader = r;
	} else {
		rc = bgsnap_restore_reader(r, &t, 1, 0, err, sizeof(err));
		bgsnap_reader_close(r);
	}
	if (rc < 0) {
		if (s->cfg.lazy)
			bgsnap_reader_close(r);
		fprintf(stderr, "bgsnap-kv: %s: restore failed: %s\n", path, err);
		arena_unmap(base, s->cfg.maxmemory);
		return -1;
	}
	s->db = base;
	s->ps.restored = true;
	s->ps.restore_usable_us = (mono_ns() - t0) / 1000;
	if (!s->cfg.lazy)
		s->ps.restore_total_us = s->ps.restore_usable_us;
	if (arena_check(s->db, s->cfg.maxmemory, err, sizeof(err)) < 0) {
		fprintf(stderr, "bgsnap-kv: %s: %s\n", path, err);
		return -1;
	}
	return 0;
}

int persist_open_arena(struct server *s, bool maxmemory_given)
{
	if (s->cfg.restore)
		return restore_arena(s, maxmemory_given);
	void *base = arena_map(s->cfg.maxmemory, s->cfg.thp);
	if (!base) {
		fprintf(stderr, "bgsnap-kv: cannot map the arena (%zu bytes at 0x%" PRIxPTR "): %s\n", s->cfg.maxmemory,
		        ARENA_BASE, strerror(errno));
		return -1;
	}
	uint64_t seed;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = mono_ns();
	s->db = base;
	arena_init(s->db, s->cfg.maxmemory, seed);
	return 0;
}

void persist_close(struct server *s)
{
	if (s->ps.lazy)
		persist_lazy_finish(s);
	arena_unmap(s->db, s->cfg.maxmemory);
	s->db = NULL;
}
