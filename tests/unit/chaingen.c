/* chaingen.c - chains of snapshot files for tests (see chaingen.h). */
#include "chaingen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/crc32c.h"
#include "format/le.h"
#include "testutil.h"

void cg_id(uint8_t id[16], uint64_t seed, unsigned k)
{
	uint64_t a = tu_mix64(seed * 1000003u + k + 1), b = tu_mix64(a ^ 0x9e3779b97f4a7c15ull) | 1;
	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
}

/* Changes about one page in `den` of every region; marks them kept. */
static void change(struct fg_spec *s, uint8_t **keep, unsigned den, uint64_t seed, unsigned k)
{
	for (unsigned i = 0; i < s->nregions; i++) {
		memset(keep[i], 0, s->pages[i]);
		for (uint64_t p = 0; p < s->pages[i]; p++) {
			uint64_t x = tu_mix64(seed ^ ((uint64_t)k << 40) ^ ((uint64_t)i << 32) ^ p);
			if (x % den)
				continue;
			keep[i][p] = 1;
			uint8_t *pg = s->mem[i] + p * TU_PAGE;
			if (x % 7 == 1)
				memset(pg, 0, TU_PAGE);
			else if (x % 7 != 2)   /* 2: held again, unchanged */
				for (size_t b = 0; b < TU_PAGE; b += 8) {
					uint64_t v = tu_mix64(x + b);
					memcpy(pg + b, &v, 8);
				}
		}
	}
}

void cg_write(struct fg_spec *s, const char *dir, const char *prefix, unsigned links, unsigned change_den,
              uint64_t seed, struct cg_chain *c)
{
	CHECK(links >= 1 && links <= CG_MAX_LINKS, "cg_write: %u links", links);
	memset(c, 0, sizeof(*c));
	uint8_t *keep[FG_MAX_REGIONS];
	for (unsigned i = 0; i < s->nregions; i++) {
		keep[i] = calloc(s->pages[i], 1);
		CHECK(keep[i], "calloc");
	}
	for (unsigned k = 0; k < links; k++) {
		struct fmt_lineage *l = &c->lin[k];
		memset(l, 0, sizeof(*l));
		cg_id(l->id, seed, k);
		if (k) {
			memcpy(l->parent_id, c->lin[k - 1].id, 16);
			l->parent_file_crc = c->crc[k - 1];
			l->depth = k;
			change(s, keep, change_den ? change_den : 8, seed, k);
		}
		for (unsigned i = 0; i < s->nregions; i++)
			s->keep[i] = k ? keep[i] : NULL;
		s->lin = l;
		s->file_crc = &c->crc[k];
		snprintf(c->path[k], sizeof(c->path[k]), "%s/%s-%03u.bgs", dir, prefix, k);
		fg_write_path(s, c->path[k]);
		c->n = k + 1;
	}
	for (unsigned i = 0; i < s->nregions; i++) {
		free(keep[i]);
		s->keep[i] = NULL;
	}
	s->lin = NULL;
	s->file_crc = NULL;
}

void cg_patch_header(const char *path, uint64_t off, const void *bytes, size_t len)
{
	size_t n;
	uint8_t *f = fg_read_file(path, &n);
	uint8_t *h = f + FMT_MAGIC_LEN;
	uint64_t hlen = le64_load(h + 8);
	CHECK(off + len <= hlen, "cg_patch_header: %llu+%zu past the header", (unsigned long long)off, len);
	memcpy(h + FMT_REC_HDR_LEN + off, bytes, len);
	le32_store(h + FMT_REC_HDR_LEN + hlen, crc32c(0, h, FMT_REC_HDR_LEN + hlen));
	uint8_t *t = f + n - FMT_TRAILER_REC_LEN;
	le32_store(t + FMT_REC_HDR_LEN + 48, crc32c(0, f, n - FMT_TRAILER_REC_LEN));
	le32_store(t + FMT_REC_HDR_LEN + FMT_TRAILER_LEN, crc32c(0, t, FMT_REC_HDR_LEN + FMT_TRAILER_LEN));
	fg_write_file(path, f, n);
	free(f);
}
