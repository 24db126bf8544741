/*
 * restore_direct.c - eager restore's reads straight into the destination
 * (restore_int.h): a slice of records is read with preadv, the page data of
 * PAGES records into the target memory, everything else (record heads and
 * checksums, ZERO and CPAGES records) into the slice buffer at the place it
 * has in the file.  No intermediate copy of the pages: the kernel copies
 * them once, from the page cache into the target.
 *
 * A fresh target that the kernel would back with transparent huge pages
 * (smaps "THPeligible: 1") is populated ahead of the read in 2 MiB steps
 * (MADV_POPULATE_WRITE): one allocation per huge page instead of a page
 * fault per 4 KiB page during the copy, and the restored memory is made of
 * huge pages as the owner asked.
 *
 * Also the plain read of a stretch of records that lazy restore uses.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "format/reader.h"
#include "restore/restore_int.h"

#define HUGE_BYTES (2u << 20)
#define IOV_BATCH 1024   /* IOV_MAX on Linux */

typedef unsigned long long ull;

static void populate(struct rst_target *t, uint64_t first, uint64_t count)
{
	/* Whole huge pages by address, clipped to the target. */
	uintptr_t lo = (uintptr_t)(t->dst + first * PAGE_SIZE_), hi = (uintptr_t)(t->dst + (first + count) * PAGE_SIZE_);
	uintptr_t a = (uintptr_t)t->dst, b = a + t->pages * PAGE_SIZE_;
	lo -= lo % HUGE_BYTES;
	hi += hi % HUGE_BYTES ? HUGE_BYTES - hi % HUGE_BYTES : 0;
	lo = lo < a ? a : lo;
	hi = hi > b ? b : hi;
	/* Only failure to populate is a slower copy (it faults the pages in
	 * itself), so errors are not reported: an old kernel says EINVAL. */
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

void rst_pop_add(struct rst_pop *p, struct rst_target *t, uint64_t first, uint64_t count)
{
	/* Merged when the huge pages they touch are the same or adjacent:
	 * never populates a huge page that no record of the slice fills. */
	uintptr_t hp_new = t ? ((uintptr_t)t->dst + first * PAGE_SIZE_) / HUGE_BYTES : 0;
	uintptr_t hp_end = p->t ? ((uintptr_t)p->t->dst + (p->end - 1) * PAGE_SIZE_) / HUGE_BYTES : 0;
	if (t && p->t == t && first >= p->first && hp_new <= hp_end + 1) {
		if (first + count > p->end)
			p->end = first + count;
		return;
	}
	if (p->t)
		populate(p->t, p->first, p->end - p->first);
	*p = (struct rst_pop){ t, first, first + count };
}

int rst_pread_all(int fd, uint8_t *buf, uint64_t len, uint64_t off, struct bgsnap_err *err)
{
	uint64_t got = 0;
	while (got < len) {
		ssize_t k = pread(fd, buf + got, (size_t)(len - got), (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return err_sys(err, -errno, "reading the snapshot at offset %llu", (ull)(off + got));
		if (k == 0)
			return err_set(err, -EBADMSG, "truncated: the file ends at offset %llu, inside records that "
			               "extend to %llu", (ull)(off + got), (ull)(off + len));
		got += (uint64_t)k;
	}
	return 0;
}

/* preadv of all of iov[0..n) at off; -EBADMSG when the file ends first. */
static int preadv_all(int fd, struct iovec *iov, int n, uint64_t off, struct bgsnap_err *err)
{
	while (n > 0) {
		ssize_t k = preadv(fd, iov, n > IOV_BATCH ? IOV_BATCH : n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return err_sys(err, -errno, "reading the snapshot at offset %llu", (ull)off);
		if (k == 0)
			return err_set(err, -EBADMSG, "truncated: the file ends at offset %llu, inside records", (ull)off);
		off += (uint64_t)k;
		size_t left = (size_t)k;
		while (n > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0 && left) {   /* a short read: the rest of this piece next */
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

/* Appends [p, p+len) to the list, merged with the last piece when they
 * touch (the slice buffer's pieces between two directly read runs). */
static void iov_add(struct iovec *iov, int *n, void *p, size_t len)
{
	if (!len)
		return;
	if (*n && (uint8_t *)iov[*n - 1].iov_base + iov[*n - 1].iov_len == p) {
		iov[*n - 1].iov_len += len;
		return;
	}
	iov[(*n)++] = (struct iovec){ p, len };
}

int rst_read_direct(int fd, const bgsnap_reader *r, size_t a, size_t b, uint8_t *buf, uint8_t **dst,
                    struct iovec *iov, struct bgsnap_err *err)
{
	struct reader_run x;
	reader_run_get(r, a, &x);
	uint64_t base = x.offset, data = reader_run_data_offset();
	int n = 0;
	for (size_t i = a; i < b; i++) {
		reader_run_get(r, i, &x);
		uint8_t *rec = buf + (x.offset - base);
		if (!dst[i - a]) {
			iov_add(iov, &n, rec, (size_t)x.span);
			continue;
		}
		/* The pages go to dst; the head and the crc stay in place in buf
		 * for reader_run_check_split. */
		uint64_t len = x.count * PAGE_SIZE_;
		iov_add(iov, &n, rec, (size_t)data);
		iov_add(iov, &n, dst[i - a], (size_t)len);
		iov_add(iov, &n, rec + data + len, (size_t)(x.span - data - len));
	}
	return preadv_all(fd, iov, n, base, err);
}
