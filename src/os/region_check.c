/*
 * region_check.c - decides whether a range of the process's memory can be a
 * region, by reading /proc/self/maps: every byte must be mapped, and every
 * mapping must be anonymous or shmem (memfd, MAP_SHARED|MAP_ANONYMOUS, SysV),
 * because userfaultfd cannot write-protect file-backed pages (ext4, xfs,
 * ...) and mprotect/fork could not give the pause-instant content of a file
 * that others may write.  hugetlbfs memory, MAP_HUGETLB included (it shows
 * as "/anon_hugepage"), is refused too: the engine saves and protects 4 KiB
 * pages, which a huge-page mapping cannot split.
 *
 * Protection (and fork's copy-on-write) applies to the page tables of the
 * registered mapping only: a write to the same shmem pages through another
 * mapping raises no fault and would change the snapshot after the pause.
 * What this process maps it can see, so a region whose pages are also
 * mapped shared at another address of the process is refused (-EBUSY);
 * other processes' mappings are invisible here and stay the host's
 * contract.
 */
#include "os/region_check.h"
#include "os/proc_maps.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/vfs.h>

/* A mapping's backing, from the path column of /proc/self/maps. */
static int backing_ok(const char *path)
{
	if (path[0] == '\0' || path[0] == '[')   /* anonymous, [heap], [stack], [anon:x] */
		return 1;
	if (!strncmp(path, "/memfd:", 7) || !strncmp(path, "/dev/zero", 9) ||
	    !strncmp(path, "/SYSV", 5))
		return 1;
	return 0;
}

/* The part of one mapping of a file (shmem, memfd) inside the region: its
 * addresses [lo, hi) hold the file's bytes from `offset` on. */
struct file_span {
	uint64_t lo, hi, offset;     /* clipped to the region */
	uint64_t map_lo, map_hi;     /* the whole mapping, to tell it apart */
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	char path[64];
};

struct check_ctx {
	int need_rw;
	int shared;
	int spans_wanted;            /* collect spans (region_check) */
	uint64_t lo, hi;             /* the region */
	struct file_span *spans;     /* its file-backed parts, to look for aliases */
	size_t nspans, cap;
	struct bgsnap_err *err;
};

static int span_add(struct check_ctx *c, const struct maps_entry *m)
{
	if (c->nspans == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 4;
		struct file_span *v = realloc(c->spans, nc * sizeof(*v));
		if (!v)
			return err_set(c->err, -ENOMEM, "out of memory");
		c->spans = v;
		c->cap = nc;
	}
	struct file_span *f = &c->spans[c->nspans++];
	f->lo = m->lo > c->lo ? m->lo : c->lo;
	f->hi = m->hi < c->hi ? m->hi : c->hi;
	f->offset = m->offset + (f->lo - m->lo);
	f->map_lo = m->lo;
	f->map_hi = m->hi;
	f->dev_major = m->dev_major;
	f->dev_minor = m->dev_minor;
	f->inode = m->inode;
	snprintf(f->path, sizeof(f->path), "%s", m->path);
	return 0;
}

/* Another mapping m, shared, of the same file pages as a span of the
 * region: writes through it would not be caught. */
static int alias_one(const struct maps_entry *m, void *arg)
{
	struct check_ctx *c = arg;
	if (m->perms[3] != 's' || !m->inode)
		return 0;
	for (size_t i = 0; i < c->nspans; i++) {
		const struct file_span *f = &c->spans[i];
		if (m->inode != f->inode || m->dev_major != f->dev_major || m->dev_minor != f->dev_minor ||
		    (m->lo == f->map_lo && m->hi == f->map_hi))
			continue;
		uint64_t a = m->offset, b = m->offset + (m->hi - m->lo);
		uint64_t lo = a > f->offset ? a : f->offset;
		uint64_t hi = b < f->offset + (f->hi - f->lo) ? b : f->offset + (f->hi - f->lo);
		if (lo >= hi)
			continue;
		return err_set(c->err, -EBUSY,
		               "memory at 0x%" PRIx64 " ('%s' offset 0x%" PRIx64 ") is also mapped shared at 0x%" PRIx64
		               ": writes through that mapping would not be caught by the snapshot; map those "
		               "pages once, or register that mapping instead", f->lo + (lo - f->offset), f->path, lo,
		               m->lo + (lo - a));
	}
	return 0;
}

/* MAP_HUGETLB memory, or a file on hugetlbfs. */
static int hugetlb(const char *path)
{
	if (!strncmp(path, "/anon_hugepage", 14))
		return 1;
	struct statfs fs;
	return path[0] == '/' && statfs(path, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC;
}

static int check_one(const struct maps_entry *m, void *arg)
{
	struct check_ctx *c = arg;
	if (!backing_ok(m->path) && hugetlb(m->path))
		return err_set(c->err, -ENOTSUP,
		               "memory at 0x%" PRIx64 " is hugetlb memory ('%s'): not supported, bgsnap saves and "
		               "protects 4 KiB pages and a huge page can only be protected whole; use anonymous "
		               "memory (transparent huge pages are fine) or a memfd", m->lo, m->path);
	if (!backing_ok(m->path))
		return err_set(c->err, -ENOTSUP,
		               "memory at 0x%" PRIx64 " is backed by file '%s': file-backed mappings "
		               "cannot be write-protected; use anonymous memory or a memfd", m->lo, m->path);
	/* A region the host cannot write needs no snapshot protection, and
	 * the methods that take away PROT_WRITE give back what was there. */
	if (c->need_rw && (m->perms[0] != 'r' || m->perms[1] != 'w'))
		return err_set(c->err, -ENOTSUP, "memory at 0x%" PRIx64 " is mapped '%s', not read-write: "
		               "the mprotect method can only track read-write regions", m->lo, m->perms);
	if (m->perms[3] == 's')
		c->shared = 1;
	/* Anonymous private memory has no inode: nothing else can map it. */
	if (c->spans_wanted && m->inode)
		return span_add(c, m);
	return 0;
}

int region_check(const void *addr, uint64_t len, int *shared, struct bgsnap_err *err)
{
	struct check_ctx c = { .lo = (uintptr_t)addr, .hi = (uintptr_t)addr + len, .spans_wanted = 1, .err = err };
	int r = maps_walk(addr, len, check_one, &c, err);
	if (!r && c.nspans)
		r = maps_walk_all(alias_one, &c, err);
	*shared = c.shared;
	free(c.spans);
	return r;
}

int region_check_writable(const void *addr, uint64_t len, struct bgsnap_err *err)
{
	struct check_ctx c = { .need_rw = 1, .lo = (uintptr_t)addr, .hi = (uintptr_t)addr + len, .err = err };
	return maps_walk(addr, len, check_one, &c, err);
}
