/*
 * restore_int.h - what eager (restore.c) and lazy (restore_lazy.c) restore
 * share: target checks, filling a window of pages through a reader, and
 * installing pages into a userfaultfd-registered range.
 *
 * Invariant that keeps a crafted file harmless: a page is only ever written
 * at dst + page * PAGE_SIZE_ for a page < the target's page count, and the target
 * was checked to be exactly the region's size; the reader checked every run
 * in the file against that same size.
 */
#ifndef BGSNAP_RESTORE_INT_H
#define BGSNAP_RESTORE_INT_H

#include <stdint.h>
#include <sys/ioctl.h>

#include "bgsnap.h"
#include "util/err.h"
#include "util/page.h"
#include "os/uffd_sys.h"

#define RST_SLICE_BYTES (4u << 20)   /* file bytes per pread in file-order passes */

struct rst_target {
	unsigned region;
	uint8_t *dst;
	uint64_t pages;
	int uffd_ok;        /* eager: registered for missing faults */
	int direct;         /* eager: PAGES data read straight into dst  */
	int fresh;          /* eager: nothing populated, missing pages
	                       read as zero: ZERO runs cost nothing      */
	int thp;            /* eager: fresh and THP-eligible: populated
	                       in 2 MiB steps before the read           */
};

/* Checks targets against the snapshot (region exists, len == size, aligned,
 * no overlap, no wrap) and copies them to *out (malloc'd). */
int rst_check_targets(bgsnap_reader *r, const struct bgsnap_restore_target *t, unsigned n,
                      struct rst_target **out, struct bgsnap_err *err);

/* 1 if [dst, dst+len) is entirely private anonymous memory (/proc/self/maps),
 * 0 if it is mapped but something else, -errno (message) if not all mapped
 * or unreadable. */
int rst_private_anon(const void *dst, uint64_t len, struct bgsnap_err *err);

/* 1 if the memory at [dst, dst+len) wants transparent huge pages
 * (MADV_HUGEPAGE, or THP "always" without MADV_NOHUGEPAGE): written in
 * place, not with UFFDIO_COPY, which installs 4 KiB pages (restore_thp.c). */
int rst_thp_target(const void *dst, uint64_t len);
/* Collapses the 2 MiB blocks of [dst, dst+len) into huge pages, best
 * effort (MADV_COLLAPSE). */
void rst_thp_collapse(const void *dst, uint64_t len);

/* A lazy restore target `i` at [dst, dst+len) that is not private
 * anonymous memory: 1 with *unit (pages per fill) and *shared (mapped
 * MAP_SHARED) if it is hugetlb memory (1 GiB pages at most), aligned, or shared 4 KiB
 * memory (shmem, if the kernel registers it); else -ENOTSUP saying why
 * (restore_kind.c), or -errno if it is not all mapped. */
int rst_lazy_other_target(unsigned i, const void *dst, uint64_t len, uint64_t *unit, int *shared,
                          struct bgsnap_err *err);

/* Number of populated pages in [dst, dst+pages) (mincore), first one in
 * *first; -errno on failure. */
int64_t rst_populated(const void *dst, uint64_t pages, uint64_t *first, struct bgsnap_err *err);

/* 1 if the 4 KiB page at p is all zero. */
int rst_page_zero(const uint8_t *p);

/* Reads pages [first, first+count) of `region` into buf via read_page.
 * Returns 0, or the error of the first page that failed (*bad = that page,
 * message copied to err). */
int rst_fill(bgsnap_reader *r, unsigned region, uint64_t first, uint64_t count, uint8_t *buf,
             uint64_t *bad, struct bgsnap_err *err);

/* Index entries [first, end) of r: page records (PAGES, ZERO) that lie
 * back to back in the file, read with one pread. */
struct rst_slice {
	size_t first, end;
};

/*
 * Cuts r's page records, in file order, into slices of about
 * RST_SLICE_BYTES (a single record may exceed it: at most a reader's
 * largest PAGES record).  STATE and PAD records are in no slice: restore never
 * reads them, so a large state blob costs neither I/O nor buffer space.
 * *buf_len is the largest slice in bytes (at least 1): what one reader of
 * the slices needs.  *slices is malloc'd.
 */
int rst_slices(const bgsnap_reader *r, struct rst_slice **slices, size_t *nslices, uint64_t *buf_len,
               struct bgsnap_err *err);

/* Reads exactly len bytes at off; -EBADMSG (truncated) or -errno. */
int rst_pread_all(int fd, uint8_t *buf, uint64_t len, uint64_t off, struct bgsnap_err *err);

struct rst_counts {
	uint64_t copied, zeroed, existed;
};

/*
 * Installs `count` pages at dst from buf into a range registered for
 * missing faults: runs of non-zero pages with UFFDIO_COPY, zero runs with
 * UFFDIO_ZEROPAGE.  A page that exists already is left alone, or, when
 * `overwrite`, written with memcpy (it is present, so no fault is raised).
 * Waiters on the range are woken.  Returns 0 or -errno (message).
 */
int rst_install(int uffd, uint8_t *dst, const uint8_t *buf, uint64_t count, int overwrite,
                struct rst_counts *c, struct bgsnap_err *err);

/*
 * Installs `count` pages at dst from src (UFFDIO_COPY), or zero pages when
 * src is NULL (UFFDIO_ZEROPAGE), in as few calls as the kernel allows.  A
 * page that exists already is skipped (its waiters woken) or, when
 * `overwrite`, written in place.  Returns 0 or -errno (message).
 */
int rst_fill_run(int uffd, uint8_t *dst, const uint8_t *src, uint64_t count, int overwrite, struct rst_counts *c,
                 struct bgsnap_err *err);

/*
 * Makes pages [dst, dst+count pages) that are still missing fail loudly:
 * UFFDIO_POISON when `poison` (SIGBUS on access), else PROT_NONE (SIGSEGV),
 * then wakes their waiters.  Present pages are skipped.  Returns the number
 * of pages poisoned or -errno.
 */
int64_t rst_poison(int uffd, uint8_t *dst, uint64_t count, int poison, struct bgsnap_err *err);

/*
 * MADV_POPULATE_WRITE of the pages a slice fills in a THP target, widened
 * to whole 2 MiB pages inside the target, coalesced: records in file order
 * mostly follow each other in memory, so ranges in the same or adjacent
 * huge pages are populated by one call.  Start with { NULL }; rst_pop_add(p, NULL, 0, 0)
 * populates what is pending.
 */
struct rst_pop {
	struct rst_target *t;
	uint64_t first, end;   /* pages */
};
void rst_pop_add(struct rst_pop *p, struct rst_target *t, uint64_t first, uint64_t count);

/*
 * Reads index entries [a, b) (back to back in the file) with preadv: the
 * page data of entry i into dst[i - a] when that is not NULL (a PAGES
 * record), every other byte into buf at its offset from entry a's record
 * (so heads and checksums are where reader_run_check_split wants them).
 * iov has room for 3 * (b - a) entries.  0, -EBADMSG (truncated) or -errno.
 */
struct iovec;
int rst_read_direct(int fd, const bgsnap_reader *r, size_t a, size_t b, uint8_t *buf, uint8_t **dst,
                    struct iovec *iov, struct bgsnap_err *err);

#endif
