/*
 * track_huge.c - hugetlb regions in the shared tracking code (track.h): the
 * kernel protects a huge page only whole, so a region's granule (its huge
 * page, region.granule_pages 4 KiB pages) is claimed, saved and unprotected
 * as one.  A huge page is claimed by the `claimed` bit of its first page
 * alone, by a fault (track_huge_fault) or by the writer (track_write_huge),
 * and its `done` bits are set lowest first once all of it is saved, so
 * that the last one says the whole page is saved.
 *
 * What one fault costs: a copy of the whole huge page (2 MiB: ~1.5 ms at
 * ~1.3 GB/s) into the copy buffer while the faulting thread waits, against
 * one 4 KiB copy for other memory; the copy buffer is raised to hold one
 * (track_copybuf_bytes).
 */
#include "engine/track.h"
#include "util/tsan.h"

#include <string.h>
#include <time.h>

size_t track_copybuf_bytes(const struct bgsnap_engine *e)
{
	/* A fault on hugetlb memory copies its whole huge page: with room for
	 * one it never waits on the writer halfway through.  A 1 GiB page is
	 * not worth that much memory: its copy streams through the buffer. */
	size_t bytes = e->opts.copy_buffer_bytes;
	for (uint32_t i = 0; i < e->region_count; i++) {
		size_t unit = (size_t)(e->regions[i].granule_pages * PAGE_SIZE_);
		if (unit > bytes && unit <= TRACK_COPYBUF_HUGE_MAX)
			bytes = unit;
	}
	return bytes;
}

uint64_t track_unit_bytes(const struct track *t, uint64_t addr)
{
	uint32_t ri;
	uint64_t pg;
	if (!track_lookup(t, addr, &ri, &pg))
		return PAGE_SIZE_;
	return t->e->regions[ri].granule_pages * PAGE_SIZE_;
}

/* Sets bits [first, first+n) of v, lowest first: once the last one shows,
 * all of them do. */
void track_set_bits(_Atomic uint64_t *v, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n;) {
		uint64_t k = 64 - i % 64 < first + n - i ? 64 - i % 64 : first + n - i;
		uint64_t mask = (k == 64 ? ~0ull : (1ull << k) - 1) << (i % 64);
		atomic_fetch_or(&v[i / 64], mask);
		i += k;
	}
}

/* Copies pages [first, first+n) of region ri into the copy buffer, page by
 * page: a huge page larger than the buffer streams through it. */
static void save_span(struct track *t, uint32_t ri, uint64_t first, uint64_t n)
{
	const uint8_t *base = t->e->regions[ri].addr;
	for (uint64_t pg = first; pg < first + n; pg++) {
		uint32_t slot;
		void *dst = copybuf_get(&t->cb, &slot);
		if (!dst)
			break;   /* closed: the run is being abandoned */
		REGION_READ_BEGIN();
		memcpy(dst, base + pg * PAGE_SIZE_, PAGE_SIZE_);
		REGION_READ_END();
		copybuf_put(&t->cb, ri, pg, slot);
	}
	atomic_fetch_add_explicit(&t->e->live->pages_faulted, n, memory_order_relaxed);
}

static int unit_done(struct track_region *tr, uint64_t first, uint64_t n)
{
	uint64_t last = first + n - 1;
	return (int)(atomic_load(&tr->done[last / 64]) >> (last % 64) & 1);
}

/* A write fault after the pause on hugetlb memory: the huge page [first,
 * first+n) is claimed by the bit of its first page alone (the writer
 * claims it the same way), saved whole and unprotected whole, the only
 * way the kernel protects it. */
enum track_fault_result track_huge_fault(struct track *t, uint32_t ri, uint64_t first, uint64_t n,
                                          enum track_fault_mode mode)
{
	struct track_region *tr = &t->regions[ri];
	uint64_t addr = (uint64_t)(uintptr_t)(t->e->regions[ri].addr + first * PAGE_SIZE_), len = n * PAGE_SIZE_;
	uint64_t bit = 1ull << (first % 64);
	if (atomic_fetch_or(&tr->claimed[first / 64], bit) & bit) {
		if (mode == TRACK_FAULT_HANDLER && !unit_done(tr, first, n)) {
			atomic_store(&t->flush_req, 1);   /* the writer's flush wakes it */
			return TRACK_OWNED_ELSEWHERE;
		}
		for (unsigned spins = 0; !unit_done(tr, first, n); spins++) {
			if (atomic_load_explicit(&t->e->cancel_requested, memory_order_relaxed))
				break;
			struct timespec ts = { 0, spins < 64 ? 1000 : 20000 };
			nanosleep(&ts, NULL);
		}
		return track_unprotect_fault(t, addr, len) ? TRACK_FAILED : TRACK_ALREADY_DONE;
	}
	save_span(t, ri, first, n);
	track_set_bits(tr->done, first, n);
	return track_unprotect_fault(t, addr, len) ? TRACK_FAILED : TRACK_SAVED;
}

/* The same for one huge page [first, first+n) of a hugetlb region: claimed
 * whole by its first page's bit, as the fault path does (track_huge_fault). */
int track_write_huge(struct track *t, uint32_t ri, uint64_t first, uint64_t n)
{
	struct bgsnap_engine *e = t->e;
	struct track_region *tr = &t->regions[ri];
	uint64_t bit = 1ull << (first % 64);
	if (atomic_fetch_or(&tr->claimed[first / 64], bit) & bit)
		return 0;
	REGION_READ_BEGIN();
	int r = fmtw_pages(&e->fw, ri, first, n, e->regions[ri].addr + first * PAGE_SIZE_);
	REGION_READ_END();
	if (!r)
		track_set_bits(tr->done, first, n);
	return r;
}

