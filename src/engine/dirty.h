/*
 * dirty.h - which pages the host wrote between two snapshots.
 *
 * An asynchronous userfaultfd (UFFD_FEATURE_WP_ASYNC) stays registered
 * in write-protect mode on every region for as long as chain tracking is
 * on.  The kernel resolves the host's write faults itself and only clears
 * the page's protection bit: no thread of ours runs, a first write costs
 * about one minor fault.  One PAGEMAP_SCAN walk per region collects the
 * unprotected (written) pages and protects them again
 * (PM_SCAN_WP_MATCHING), so the set it returns is exactly the pages
 * written since the previous walk (incr.c walks once before the pause
 * and once in it).
 *
 * The scan asks for exactly PAGE_IS_WRITTEN in both its category and
 * return masks: the one query kernels answer correctly for unpopulated
 * and huge entries alike.  A page the host discarded (MADV_DONTNEED) has
 * no entry and no protection marker, so it reads as written: the next
 * snapshot stores it (as zero), never keeps the parent's stale content.
 * PM_SCAN_CHECK_WPASYNC makes a scan over memory that is no longer ours
 * (munmap then mmap again) fail with -EPERM instead of reporting nothing.
 */
#ifndef BGSNAP_DIRTY_H
#define BGSNAP_DIRTY_H

#include <stdint.h>
#include <sys/types.h>

#include "engine/engine.h"

struct dirty_tracker {
	int uffd;                /* -1: closed */
	int pagemap;             /* /proc/self/pagemap, -1: closed */
	pid_t pid;               /* tracking belongs to this address space */
	uint32_t region_count;
	uint64_t **bits;         /* per region: written since the last scan */
	uint64_t dirty_pages;    /* pages set in bits */
	uint64_t found_pages;    /* pages the last scan found written */
	uint64_t scan_us;        /* the last scan's duration */
	struct page_region *vec;
	uint64_t vec_len;
};

/* Whether this kernel has what the tracker needs (WP_ASYNC,
 * WP_UNPOPULATED, PAGEMAP_SCAN): 0, or -ENOTSUP with the reason. */
int dirty_probe(struct bgsnap_err *err);

/* Opens the descriptor, registers every region and sizes the bitmaps.
 * Nothing is protected yet: the first dirty_scan reports every page and
 * arms them all.  Before the pause (may be slow).  0 or -errno. */
int dirty_open(struct dirty_tracker *d, const struct region *regions, uint32_t n,
               struct bgsnap_err *err);

/* In the pause: fills the bitmaps with the pages written since the last
 * scan and protects them again.  On failure the tracker must be closed
 * (its protection state is unknown).  0 or -errno. */
int dirty_scan(struct dirty_tracker *d, const struct region *regions, uint32_t n,
               struct bgsnap_err *err);

/* dirty_scan, or with rearm 0 only the collection: the pages stay
 * written (unprotected) until dirty_rearm_set. */
int dirty_collect(struct dirty_tracker *d, const struct region *regions, uint32_t n, int rearm,
                  struct bgsnap_err *err);
/* dirty_collect; with accumulate 1 the bitmaps are not cleared first:
 * the pages found are added to those already set (dirty_pages counts
 * the union).  A collection with re-arm before the pause and one with
 * accumulate in it give the set written since the previous pause: a page
 * written after the first collection passed it was protected again by
 * it, so its write clears the protection and the second one finds it. */
int dirty_collect_ex(struct dirty_tracker *d, const struct region *regions, uint32_t n, int rearm,
                     int accumulate, struct bgsnap_err *err);
/* Protects again the pages set in the bitmaps (one call per run): after
 * a collection without re-arm, once the caller has written them itself.
 * 0 or -errno. */
int dirty_rearm_set(struct dirty_tracker *d, const struct region *regions, uint32_t n,
                    struct bgsnap_err *err);
/* The protect calls dirty_rearm_set would make. */
uint64_t dirty_rearm_calls(const struct dirty_tracker *d, const struct region *regions, uint32_t n);

/* Unregisters (which clears every protection bit) and frees. */
void dirty_close(struct dirty_tracker *d, const struct region *regions, uint32_t n);

static inline int dirty_test(const struct dirty_tracker *d, uint32_t region, uint64_t page)
{
	return (d->bits[region][page / 64] >> (page % 64)) & 1;
}

#endif
