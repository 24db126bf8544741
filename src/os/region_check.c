/*
 * region_check.c - decides whether a range of the process's memory can be a
 * region, by reading /proc/self/maps: every byte must be mapped, and every
 * mapping must be anonymous or shmem (memfd, MAP_SHARED|MAP_ANONYMOUS, SysV),
 * because userfaultfd cannot write-protect file-backed pages (ext4, xfs,
 * ...) and mprotect/fork could not give the pause-instant content of a file
 * that others may write.  hugetlb memory (MAP_HUGETLB, shown as
 * "/anon_hugepage"; files on a hugetlbfs mount; memfd_create(MFD_HUGETLB))
 * is accepted: its page size, from KernelPageSize in /proc/self/smaps, is
 * the region's granule - protection and saving then go by whole huge
 * pages - so a region must not mix page sizes and must be aligned to its
 * huge page.
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
	uint64_t page_bytes;         /* of the mappings seen so far; 0 before the first */
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

/* The kernel page size of mapping m: 4 KiB unless it is hugetlb memory,
 * which always has a path ("/anon_hugepage", a hugetlbfs file, "/memfd:"). */
static int page_size_of(const struct maps_entry *m, uint64_t *bytes, struct bgsnap_err *err)
{
	*bytes = 4096;
	if (m->path[0] != '/')
		return 0;
	int r = maps_page_size(m->lo, bytes);
	return r ? err_set(err, r, "cannot read the page size of the mapping at 0x%" PRIx64 " from /proc/self/smaps: %s",
	                   m->lo, strerror(-r)) : 0;
}

static int check_one(const struct maps_entry *m, void *arg)
{
	struct check_ctx *c = arg;
	uint64_t psz;
	int r = page_size_of(m, &psz, c->err);
	if (r)
		return r;
	if (!backing_ok(m->path) && psz == 4096)
		return err_set(c->err, -ENOTSUP,
		               "memory at 0x%" PRIx64 " is backed by file '%s': file-backed mappings "
		               "cannot be write-protected; use anonymous memory, a memfd or hugetlbfs", m->lo, m->path);
	if (c->page_bytes && c->page_bytes != psz)
		return err_set(c->err, -ENOTSUP,
		               "memory at 0x%" PRIx64 " ('%s') has %" PRIu64 "-byte pages but the rest of the region has %"
		               PRIu64 "-byte pages: a region is tracked by one page size; register each part as "
		               "its own region", m->lo, m->path, psz, c->page_bytes);
	c->page_bytes = psz;
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

int region_check(const void *addr, uint64_t len, int *shared, uint64_t *page_bytes, struct bgsnap_err *err)
{
	struct check_ctx c = { .lo = (uintptr_t)addr, .hi = (uintptr_t)addr + len, .spans_wanted = 1, .err = err };
	int r = maps_walk(addr, len, check_one, &c, err);
	if (!r && c.nspans)
		r = maps_walk_all(alias_one, &c, err);
	*shared = c.shared;
	*page_bytes = c.page_bytes ? c.page_bytes : 4096;
	free(c.spans);
	/* A huge page is protected and copied whole: a region that cut one
	 * would own pages outside itself. */
	if (!r && (((uintptr_t)addr | len) & (*page_bytes - 1)))
		r = err_set(err, -EINVAL, "region %p+0x%" PRIx64 " is hugetlb memory with %" PRIu64 " KiB pages: its "
		            "address and length must be multiples of the huge page size", addr, len, *page_bytes >> 10);
	return r;
}

int region_check_writable(const void *addr, uint64_t len, struct bgsnap_err *err)
{
	struct check_ctx c = { .need_rw = 1, .lo = (uintptr_t)addr, .hi = (uintptr_t)addr + len, .err = err };
	return maps_walk(addr, len, check_one, &c, err);
}
