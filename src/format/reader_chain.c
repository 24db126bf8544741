/*
 * reader_chain.c - a chain of snapshot files read as one image: an
 * incremental file (version 3, a parent id) holds only some pages; the
 * others are its parent's, recursively, down to a full file.
 *
 * Owns: finding the parents by id among the regular files of the newest
 * file's directory (their first bytes only, then each found one opened and
 * checked in full), the link rules (docs/FORMAT.md, "Chains"), and the
 * image: per region, segments that tile it, each naming the newest link
 * whose records hold those pages.
 *
 * Invariants: every link passed its own open (its runs lie inside its
 * regions); every link's region table equals the newest's, so a segment
 * built from any link's runs lies inside the newest's regions too.  Depths
 * fall by exactly one per link down to a full file at depth 0, so a walk
 * ends within depth + 1 <= FMT_MAX_DEPTH + 1 files and no chain can loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/le.h"
#include "format/reader_int.h"

/* The bytes before and including a version 3 LINEAGE block. */
#define PEEK_LEN (FMT_MAGIC_LEN + FMT_REC_HDR_LEN + FMT_HEADER_FIXED_LEN + FMT_LINEAGE_LEN)

static void hex_id(const uint8_t *id, char out[2 * FMT_ID_LEN + 1])
{
	for (unsigned i = 0; i < FMT_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

int rd_link_err(bgsnap_reader *r, const bgsnap_reader *l, int rc)
{
	if (l == r)
		return rc;
	char m[sizeof(r->err.msg)];
	snprintf(m, sizeof(m), "%s", l->err.msg[0] ? l->err.msg : strerror(-rc));
	return err_set(&r->err, rc, "%s: %s", l->path, m);
}

/* `parent` may stand under `child`: the rules of a chain's link. */
static int link_check(bgsnap_reader *head, const bgsnap_reader *child, const bgsnap_reader *parent)
{
	const char *p = parent->path;
	if (!parent->has_lineage)
		return err_set(&head->err, -EBADMSG, "%s: format version %u has no lineage, it cannot be the parent of %s",
		               p, parent->version, child->path);
	if (memcmp(child->parent_id, parent->id, FMT_ID_LEN)) {
		char a[33], b[33];
		hex_id(parent->id, a);
		hex_id(child->parent_id, b);
		return err_set(&head->err, -EBADMSG, "%s: id %s, but %s names parent %s", p, a, child->path, b);
	}
	if (child->parent_file_crc != parent->file_crc_stored)
		return err_set(&head->err, -EBADMSG, "%s: file checksum 0x%08x, but %s expects its parent's to be "
		               "0x%08x (another file with the same id, or a changed one)", p, parent->file_crc_stored,
		               child->path, child->parent_file_crc);
	if (child->depth != parent->depth + 1)
		return err_set(&head->err, -EBADMSG, "%s: depth %u, but %s (depth %u) needs its parent at depth %u", p,
		               parent->depth, child->path, child->depth, child->depth - 1);
	if (parent->region_count != child->region_count)
		return err_set(&head->err, -EBADMSG, "%s: %u regions, %s has %u", p, parent->region_count, child->path,
		               child->region_count);
	for (uint32_t i = 0; i < child->region_count; i++) {
		const struct rregion *a = &parent->regions[i], *b = &child->regions[i];
		if (strcmp(a->name, b->name) || a->addr != b->addr || a->size != b->size)
			return err_set(&head->err, -EBADMSG, "%s: region %u ('%s' at 0x%llx, %llu bytes) differs from %s's "
			               "('%s' at 0x%llx, %llu bytes)", p, i, a->name, (ull)a->addr, (ull)a->size,
			               child->path, b->name, (ull)b->addr, (ull)b->size);
	}
	return 0;
}

/* Overlays link k's runs of region g on the segments so far. */
static int overlay(bgsnap_reader *r, struct rregion *g, const struct rregion *lg, uint32_t k)
{
	size_t cap = g->nsegs + 2 * lg->nruns + 1, n = 0, i = 0, j = 0;
	struct seg *out = malloc(cap * sizeof(*out));
	if (!out)
		return err_set(&r->err, -ENOMEM, "out of memory for the chain's image");
	uint64_t pos = 0;
	while (pos < g->pages) {
		while (j < lg->nruns && lg->runs[j].first + lg->runs[j].count <= pos)
			j++;
		if (j < lg->nruns && lg->runs[j].first <= pos) {
			const struct run *x = &lg->runs[j];
			out[n++] = (struct seg){ pos, x->first + x->count - pos, x, k };
			pos = x->first + x->count;
			continue;
		}
		uint64_t lim = j < lg->nruns ? lg->runs[j].first : g->pages;
		while (g->segs[i].first + g->segs[i].count <= pos)
			i++;
		const struct seg *s = &g->segs[i];
		uint64_t e = s->first + s->count < lim ? s->first + s->count : lim;
		out[n++] = (struct seg){ pos, e - pos, s->run, s->link };
		pos = e;
	}
	free(g->segs);
	g->segs = out;
	g->nsegs = n;
	return 0;
}

/* The image: the oldest (full) link's runs, each newer link's over them. */
static int build_image(bgsnap_reader *r)
{
	size_t n = r->nparents + 1;
	for (uint32_t gi = 0; gi < r->region_count; gi++) {
		struct rregion *g = &r->regions[gi];
		const struct rregion *base = &rd_link(r, 0)->regions[gi];
		if (!(g->segs = malloc((base->nruns + 1) * sizeof(*g->segs))))
			return err_set(&r->err, -ENOMEM, "out of memory for the chain's image");
		for (size_t k = 0; k < base->nruns; k++)
			g->segs[k] = (struct seg){ base->runs[k].first, base->runs[k].count, &base->runs[k], 0 };
		g->nsegs = base->nruns;
		for (size_t k = 1; k < n; k++) {
			int rc = overlay(r, g, &rd_link(r, k)->regions[gi], (uint32_t)k);
			if (rc < 0)
				return rc;
		}
	}
	if (!(r->run_base = malloc((n + 1) * sizeof(*r->run_base))))
		return err_set(&r->err, -ENOMEM, "out of memory");
	r->run_base[0] = 0;
	for (size_t k = 0; k < n; k++)
		r->run_base[k + 1] = r->run_base[k] + rd_link(r, k)->nindex;
	return 0;
}

int rd_chain_adopt(bgsnap_reader *r, bgsnap_reader **older, size_t n)
{
	if (n && !(r->parents = malloc(n * sizeof(*r->parents)))) {
		for (size_t i = 0; i < n; i++)
			bgsnap_reader_close(older[i]);
		return err_set(&r->err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		r->parents[i] = older[i];
	r->nparents = n;
	const bgsnap_reader *oldest = rd_link(r, 0);
	if (oldest->incremental) {
		char a[33];
		hex_id(oldest->parent_id, a);
		return err_set(&r->err, -EBADMSG, "%s: the oldest file of the chain is incremental (its parent %s is "
		               "not given)", oldest->path, a);
	}
	for (size_t k = 1; k <= n; k++) {
		int rc = link_check(r, rd_link(r, k), rd_link(r, k - 1));
		if (rc < 0)
			return rc;
	}
	return n ? build_image(r) : 0;
}

/* A regular file of the directory whose first bytes are a version 3
 * header: its name and id. */
struct cand {
	char *name;
	uint8_t id[FMT_ID_LEN];
};

struct cands {
	struct cand *v;
	size_t n, cap;
};

static void cands_free(struct cands *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].name);
	free(c->v);
}

/* The id of the version 3 file (or version 4 with a LINEAGE) `name` in directory `dfd`: 1, 0 if it is
 * not one (or cannot be read: it cannot be a parent then). */
static int peek_id(int dfd, const char *name, uint8_t *id)
{
	struct stat st;
	if (fstatat(dfd, name, &st, 0) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)PEEK_LEN)
		return 0;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	uint8_t b[PEEK_LEN];
	ssize_t k = pread(fd, b, sizeof(b), 0);
	close(fd);
	const uint8_t *h = b + FMT_MAGIC_LEN;
	uint32_t v = le32_load(h + FMT_REC_HDR_LEN), feat = le32_load(h + FMT_REC_HDR_LEN + 12);
	if (k != (ssize_t)sizeof(b) || memcmp(b, FMT_MAGIC, FMT_MAGIC_LEN) || le32_load(h) != FMT_REC_HEADER ||
	    !(v == FMT_VERSION_LINEAGE || (v == FMT_VERSION_ALIGNED && (feat & FMT_FEAT_LINEAGE))))
		return 0;
	memcpy(id, h + FMT_REC_HDR_LEN + FMT_HEADER_FIXED_LEN, FMT_ID_LEN);
	return 1;
}

static int scan_dir(bgsnap_reader *r, const char *dir, struct cands *c)
{
	DIR *d = opendir(dir);
	if (!d)
		return err_sys(&r->err, -errno, "opening directory %s to find the parents of %s", dir, r->path);
	int rc = 0;
	struct dirent *e;
	errno = 0;
	while (rc == 0 && (e = readdir(d))) {
		uint8_t id[FMT_ID_LEN];
		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		if (!peek_id(dirfd(d), e->d_name, id))
			continue;
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 16;
			struct cand *v = realloc(c->v, cap * sizeof(*v));
			if (!v) {
				rc = err_set(&r->err, -ENOMEM, "out of memory");
				break;
			}
			c->v = v;
			c->cap = cap;
		}
		if (!(c->v[c->n].name = strdup(e->d_name))) {
			rc = err_set(&r->err, -ENOMEM, "out of memory");
			break;
		}
		memcpy(c->v[c->n++].id, id, FMT_ID_LEN);
	}
	if (rc == 0 && errno)
		rc = err_sys(&r->err, -errno, "reading directory %s", dir);
	closedir(d);
	return rc;
}

/* The parent of `child` among the candidates: opened and checked; the
 * first candidate with its id that passes.  -ENOENT when none has the id;
 * otherwise the first failure, naming that file. */
static int find_parent(bgsnap_reader *r, const bgsnap_reader *child, const char *dir, const struct cands *c,
                       bgsnap_reader **out)
{
	struct bgsnap_err first = { 0, "" };
	for (size_t i = 0; i < c->n; i++) {
		if (memcmp(c->v[i].id, child->parent_id, FMT_ID_LEN))
			continue;
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", dir, c->v[i].name) >= (int)sizeof(path))
			continue;
		bgsnap_reader *p;
		struct bgsnap_err e = { 0, "" };
		int rc = rd_open_one(&p, path, &e);
		if (rc < 0) {
			if (!first.code)
				err_set(&first, rc, "%s: %s", path, e.msg);
			continue;
		}
		if ((rc = link_check(r, child, p)) == 0) {
			err_clear(&r->err);
			*out = p;
			return 0;
		}
		if (!first.code)
			first = r->err;
		bgsnap_reader_close(p);
	}
	if (first.code) {
		r->err = first;
		return first.code;
	}
	char a[33];
	hex_id(child->parent_id, a);
	return err_set(&r->err, -ENOENT, "parent %s of %s (depth %u) not found among the files of %s", a, child->path,
	               child->depth, dir);
}

int rd_chain_find(bgsnap_reader *r)
{
	if (!r->incremental)
		return 0;
	char dir[4096];
	const char *slash = strrchr(r->path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == r->path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - r->path), r->path);
	struct cands c = { 0 };
	int rc = scan_dir(r, dir, &c);
	/* Newest first while searching; depth bounds the walk. */
	size_t n = 0, cap = r->depth;
	bgsnap_reader **links = rc == 0 ? calloc(cap, sizeof(*links)) : NULL;
	if (rc == 0 && !links)
		rc = err_set(&r->err, -ENOMEM, "out of memory");
	const bgsnap_reader *child = r;
	while (rc == 0 && child->incremental && n < cap) {
		if ((rc = find_parent(r, child, dir, &c, &links[n])) == 0)
			child = links[n++];
	}
	cands_free(&c);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			bgsnap_reader_close(links[i]);
		free(links);
		return rc;
	}
	for (size_t i = 0; i < n / 2; i++) {
		bgsnap_reader *t = links[i];
		links[i] = links[n - 1 - i];
		links[n - 1 - i] = t;
	}
	rc = rd_chain_adopt(r, links, n);
	free(links);
	return rc;
}

const struct seg *rd_chain_seg(const bgsnap_reader *r, unsigned region, uint64_t page)
{
	const struct rregion *g = &r->regions[region];
	size_t lo = 0, hi = g->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct seg *s = &g->segs[mid];
		if (page < s->first)
			hi = mid;
		else if (page >= s->first + s->count)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

void rd_chain_free(bgsnap_reader *r)
{
	for (size_t i = 0; i < r->nparents; i++)
		bgsnap_reader_close(r->parents[i]);
	free(r->parents);
	r->parents = NULL;
	r->nparents = 0;
	if (r->regions)
		for (uint32_t g = 0; g < r->region_count; g++) {
			free(r->regions[g].segs);
			r->regions[g].segs = NULL;
		}
	free(r->run_base);
	r->run_base = NULL;
}

unsigned bgsnap_reader_chain_len(const bgsnap_reader *r)
{
	return r ? (unsigned)r->nparents + 1 : 0;
}

bgsnap_reader *bgsnap_reader_chain_link(bgsnap_reader *r, unsigned k)
{
	return r && k <= r->nparents ? rd_link(r, k) : NULL;
}

const char *bgsnap_reader_path(const bgsnap_reader *r)
{
	return r ? r->path : NULL;
}
