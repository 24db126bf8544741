/*
 * dirty.c - the write tracker between snapshots (see dirty.h): an
 * asynchronous userfaultfd registered on every region, and PAGEMAP_SCAN
 * to collect and re-arm the written pages in one walk.
 */
#include "engine/dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "os/uffd_sys.h"
#include "util/clock.h"

#define DIRTY_VEC_LEN 1024u   /* runs per scan call; a full vector resumes at walk_end */

static const uint64_t dirty_features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
                                       UFFD_FEATURE_PAGEFAULT_FLAG_WP;

int dirty_probe(struct bgsnap_err *err)
{
	uint64_t have;
	int r = uffd_kernel_features(&have, err);
	if (r)
		return r;
	if ((have & dirty_features) != dirty_features)
		return err_set(err, -ENOTSUP, "tracking writes between snapshots needs userfaultfd "
		               "UFFD_FEATURE_WP_ASYNC and UFFD_FEATURE_WP_UNPOPULATED (Linux 6.7+); "
		               "this kernel offers features 0x%llx", (unsigned long long)have);
	return 0;
}

static int register_all(struct dirty_tracker *d, const struct region *regions, uint32_t n,
                        struct bgsnap_err *err)
{
	for (uint32_t i = 0; i < n; i++) {
		struct uffdio_register reg = {
			.range = { (uint64_t)(uintptr_t)regions[i].addr, regions[i].len },
			.mode = UFFDIO_REGISTER_MODE_WP,
		};
		if (ioctl(d->uffd, UFFDIO_REGISTER, &reg) < 0)
			return err_sys(err, -errno, "cannot register region '%s' for write tracking "
			               "between snapshots%s", regions[i].name,
			               errno == EBUSY ? " (another userfaultfd holds it)" : "");
	}
	return 0;
}

int dirty_open(struct dirty_tracker *d, const struct region *regions, uint32_t n,
               struct bgsnap_err *err)
{
	memset(d, 0, sizeof(*d));
	d->uffd = -1;
	d->pagemap = -1;
	d->pid = getpid();
	uint64_t granted;
	int r = uffd_open(dirty_features, dirty_features, &granted, err);
	if (r < 0)
		return r;
	d->uffd = r;
	d->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (d->pagemap < 0) {
		r = err_sys(err, -errno, "cannot open /proc/self/pagemap");
		goto fail;
	}
	d->bits = calloc(n ? n : 1, sizeof(*d->bits));
	d->vec = calloc(DIRTY_VEC_LEN, sizeof(*d->vec));
	if (!d->bits || !d->vec) {
		r = err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	d->vec_len = DIRTY_VEC_LEN;
	d->region_count = n;
	for (uint32_t i = 0; i < n; i++) {
		d->bits[i] = calloc((regions[i].pages + 63) / 64, sizeof(uint64_t));
		if (!d->bits[i]) {
			r = err_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	r = register_all(d, regions, n, err);
	if (r)
		goto fail;
	return 0;
fail:
	dirty_close(d, regions, n);
	return r;
}

/* Sets pages [first, first+count) and returns how many were not set. */
static uint64_t bits_set_range(uint64_t *bits, uint64_t first, uint64_t count)
{
	uint64_t added = 0;
	for (uint64_t p = first; p < first + count;) {
		if (p % 64 == 0 && first + count - p >= 64) {
			added += 64 - (uint64_t)__builtin_popcountll(bits[p / 64]);
			bits[p / 64] = ~0ull;
			p += 64;
		} else {
			added += !((bits[p / 64] >> (p % 64)) & 1);
			bits[p / 64] |= 1ull << (p % 64);
			p++;
		}
	}
	return added;
}

static int scan_region(struct dirty_tracker *d, const struct region *rg, uint64_t *bits, int rearm,
                       struct bgsnap_err *err)
{
	uint64_t base = (uint64_t)(uintptr_t)rg->addr, start = base, end = base + rg->len;
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = (rearm ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
			.start = start, .end = end,
			.vec = (uint64_t)(uintptr_t)d->vec, .vec_len = d->vec_len,
			.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(d->pagemap, PAGEMAP_SCAN, &a);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, -errno, "the scan for pages written since the last snapshot "
			               "failed in region '%s'%s", rg->name,
			               errno == EPERM ? " (it was unmapped or mapped again: the "
			               "next snapshot is a full one)" : "");
		}
		for (long i = 0; i < n; i++) {
			uint64_t s = d->vec[i].start < base ? base : d->vec[i].start;
			uint64_t e = d->vec[i].end > end ? end : d->vec[i].end;
			if (e <= s)
				continue;
			d->dirty_pages += bits_set_range(bits, (s - base) / PAGE_SIZE_, (e - s) / PAGE_SIZE_);
			d->found_pages += (e - s) / PAGE_SIZE_;
		}
		if (a.walk_end >= end)
			break;
		if (a.walk_end <= start)
			return err_set(err, -EIO, "the scan of region '%s' made no progress at 0x%llx",
			               rg->name, (unsigned long long)start);
		start = a.walk_end;
	}
	return 0;
}

int dirty_scan(struct dirty_tracker *d, const struct region *regions, uint32_t n,
               struct bgsnap_err *err)
{
	return dirty_collect(d, regions, n, 1, err);
}

int dirty_collect(struct dirty_tracker *d, const struct region *regions, uint32_t n, int rearm,
                  struct bgsnap_err *err)
{
	return dirty_collect_ex(d, regions, n, rearm, 0, err);
}

int dirty_collect_ex(struct dirty_tracker *d, const struct region *regions, uint32_t n, int rearm,
                     int accumulate, struct bgsnap_err *err)
{
	if (d->uffd < 0 || n != d->region_count)
		return err_set(err, -ESTALE, "the write tracker does not match the regions");
	if (getpid() != d->pid)
		return err_set(err, -ESTALE, "write tracking belongs to the process that started it "
		               "(this is a fork child)");
	uint64_t t0 = now_ns();
	if (!accumulate)
		d->dirty_pages = 0;
	d->found_pages = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (!accumulate)
			memset(d->bits[i], 0, (regions[i].pages + 63) / 64 * sizeof(uint64_t));
		int r = scan_region(d, &regions[i], d->bits[i], rearm, err);
		if (r)
			return r;
	}
	d->scan_us = us_since(t0);
	return 0;
}

void dirty_close(struct dirty_tracker *d, const struct region *regions, uint32_t n)
{
	/* Closing the descriptor unregisters too, but in a fork child the
	 * regions are not ours to unregister: the child's copy carries no
	 * registration. */
	if (d->uffd >= 0 && getpid() == d->pid) {
		for (uint32_t i = 0; i < n && i < d->region_count; i++) {
			struct uffdio_range rr = { (uint64_t)(uintptr_t)regions[i].addr, regions[i].len };
			(void)ioctl(d->uffd, UFFDIO_UNREGISTER, &rr);
		}
	}
	if (d->uffd >= 0)
		close(d->uffd);
	if (d->pagemap >= 0)
		close(d->pagemap);
	for (uint32_t i = 0; d->bits && i < d->region_count; i++)
		free(d->bits[i]);
	free(d->bits);
	free(d->vec);
	memset(d, 0, sizeof(*d));
	d->uffd = -1;
	d->pagemap = -1;
}

/* Calls the function for each run of set bits of region ri, runs less
 * than DIRTY_REARM_GAP pages apart taken as one; returns the runs or the
 * first failure. */
#define DIRTY_REARM_GAP 8u

static int64_t for_runs(const struct dirty_tracker *d, const struct region *rg, uint32_t ri,
                        int (*fn)(const struct dirty_tracker *, const struct region *, uint64_t, uint64_t))
{
	const uint64_t *bits = d->bits[ri];
	uint64_t pages = rg->pages;
	int64_t runs = 0;
	for (uint64_t p = 0; p < pages;) {
		uint64_t word = bits[p / 64] >> (p % 64);
		if (!word) {
			p = (p / 64 + 1) * 64;
			continue;
		}
		p += (uint64_t)__builtin_ctzll(word);
		uint64_t s = p, last = p;
		/* Extend over set bits and gaps shorter than DIRTY_REARM_GAP. */
		for (uint64_t q = p + 1; q < pages && q - last <= DIRTY_REARM_GAP; q++)
			if ((bits[q / 64] >> (q % 64)) & 1)
				last = q;
		p = last + 1;
		runs++;
		if (fn) {
			int r = fn(d, rg, s, p - s);
			if (r)
				return r;
		}
	}
	return runs;
}

static int protect_run(const struct dirty_tracker *d, const struct region *rg, uint64_t first, uint64_t n)
{
	return uffd_wp(d->uffd, (uint64_t)(uintptr_t)rg->addr + first * PAGE_SIZE_, n * PAGE_SIZE_, 1, 0, 100);
}

uint64_t dirty_rearm_calls(const struct dirty_tracker *d, const struct region *regions, uint32_t n)
{
	uint64_t calls = 0;
	for (uint32_t ri = 0; ri < n; ri++)
		calls += (uint64_t)for_runs(d, &regions[ri], ri, NULL);
	return calls;
}

int dirty_rearm_set(struct dirty_tracker *d, const struct region *regions, uint32_t n,
                    struct bgsnap_err *err)
{
	/* Protecting pages that are protected already costs ~0.2 us each in
	 * a range call, a call of its own 1-10 us (its TLB flush): runs a few
	 * pages apart go in one call. */
	for (uint32_t ri = 0; ri < n; ri++) {
		int64_t r = for_runs(d, &regions[ri], ri, protect_run);
		if (r < 0)
			return err_sys(err, (int)r, "cannot re-arm write tracking on region '%s'", regions[ri].name);
	}
	return 0;
}
