/* proc_maps.h - walking the mappings of our address space (/proc/self/maps). */
#ifndef BGSNAP_PROC_MAPS_H
#define BGSNAP_PROC_MAPS_H

#include <stdint.h>

#include "util/err.h"

struct maps_entry {
	uint64_t lo, hi;       /* the whole mapping, not clipped to the range */
	char perms[8];         /* "rw-p", "r--s", ... */
	uint64_t offset;       /* file offset of lo (pages of a memfd, shmem) */
	uint32_t dev_major, dev_minor;
	uint64_t inode;        /* 0 for anonymous memory */
	const char *path;      /* "" for anonymous; "[heap]", "/memfd:x", a file */
};

/*
 * Calls fn for every mapping that overlaps [addr, addr+len), in address
 * order, from /proc/self/maps.  fn returns 0 to go on, or a negative errno
 * (with its message in err) to stop.  Returns 0, fn's error, or -EFAULT
 * "... is not mapped" when part of the range is a hole.
 */
int maps_walk(const void *addr, uint64_t len, int (*fn)(const struct maps_entry *m, void *ctx), void *ctx,
              struct bgsnap_err *err);

/* Calls fn for every mapping of the process, in address order; returns 0
 * or fn's error. */
int maps_walk_all(int (*fn)(const struct maps_entry *m, void *ctx), void *ctx, struct bgsnap_err *err);

/* The page size the kernel maps [lo, ...) with (KernelPageSize in
 * /proc/self/smaps for the mapping that starts at lo): 4096, or a hugetlb
 * page size.  0 or -errno (-ENOENT: no mapping starts at lo). */
int maps_page_size(uint64_t lo, uint64_t *bytes);

#endif
