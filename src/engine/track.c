/*
 * track.c - page ownership, the fault copy path and the background writer,
 * shared by the write-tracking methods (see track.h for the page states and
 * invariants).
 *
 * The writer sweeps in batches of SWEEP_PAGES: it claims a batch with one
 * fetch_or per 64 pages and encodes the runs it won from the (still
 * protected, hence stable) memory into the sink's stage.  It removes
 * protection over a window (a sixteenth of the region, 16-256 MiB) at once,
 * one call per run of saved pages: each call flushes the TLB, and system
 * calls per page are what make a background snapshot slow on a virtual
 * machine (QEMU's takes 14-33x its own stop-the-world save here).  A fault on a saved page of the window is
 * unprotected by the fault path at once; a fault on the batch being written
 * asks the writer to flush its window right after the batch.
 * Before each batch it drains the fault copies, so the copy buffer empties
 * as fast as it fills.
 */
#include "engine/incr.h"
#include "engine/track.h"
#include "util/clock.h"
#include "util/thread.h"
#include "util/tsan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_PAGES 64u           /* 256 KiB: one bitmap word; bounds a fault's wait on the writer */
#define DRAIN_MAX 256u
#define SPAN_GAP_PAGES 32u        /* 128 KiB of protected pages cost less than a second protect call */
#define PRE_ROUNDS_MAX 4
#define PRE_ROUND_MIN_PAGES 64u   /* few enough for the pause */
/* The unprotect window: a sixteenth of the region, within these bounds. */
#define WINDOW_MIN_PAGES 4096u    /* 16 MiB */
#define WINDOW_MAX_PAGES 65536u   /* 256 MiB */

/* The run's copy buffer: the one a chain kept from its last run if there
 * is one (its pages already faulted in), warmed for the pause's copies. */
static int copybuf_open(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	size_t cb_bytes = track_copybuf_bytes(e), kept_len = 0;
	void *kept = incr_copybuf_take(e, &kept_len);
	int r = kept ? copybuf_init_mem(&t->cb, cb_bytes, kept, kept_len) : copybuf_init(&t->cb, cb_bytes);
	if (r)
		return err_set(&e->err, r, "cannot allocate the %zu-byte copy buffer", cb_bytes);
	t->cb_ready = 1;
	incr_warm_copybuf(t);
	return 0;
}

int track_init(struct track *t, struct bgsnap_engine *e, const struct track_method *m, void *priv)
{
	memset(t, 0, sizeof(*t));
	t->e = e;
	t->m = m;
	t->method = priv;
	t->regions = calloc(e->region_count, sizeof(*t->regions));
	if (!t->regions)
		return err_set(&e->err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct track_region *tr = &t->regions[i];
		tr->words = (e->regions[i].pages + 63) / 64;
		tr->claimed = calloc(tr->words, sizeof(uint64_t));
		tr->done = calloc(tr->words, sizeof(uint64_t));
		tr->dirty = calloc(tr->words, sizeof(uint64_t));
		if (!tr->claimed || !tr->done || !tr->dirty)
			return err_set(&e->err, -ENOMEM, "out of memory for the page bitmaps");
	}
	atomic_store(&t->prephase, 1);
	int r = copybuf_open(t);
	if (r)
		return r;
	t->fault_around = e->fault_around_pages;
	atomic_store(&e->live->copybuf_capacity, (uint64_t)t->cb.nslots * PAGE_SIZE_);
	return 0;
}

void track_free(struct track *t)
{
	if (t->regions) {
		for (uint32_t i = 0; i < t->e->region_count; i++) {
			free((void *)t->regions[i].claimed);
			free((void *)t->regions[i].done);
			free((void *)t->regions[i].dirty);
		}
	}
	free(t->regions);
	t->regions = NULL;
	if (t->cb_ready) {
		size_t len;
		void *mem = copybuf_detach(&t->cb, &len);
		if (mem && !incr_copybuf_keep(t->e, mem, len))
			munmap(mem, len);
		copybuf_destroy(&t->cb);
	}
	t->cb_ready = 0;
}

int track_lookup(const struct track *t, uint64_t addr, uint32_t *region, uint64_t *page)
{
	const struct bgsnap_engine *e = t->e;
	for (uint32_t i = 0; i < e->region_count; i++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[i].addr;
		if (addr >= a && addr - a < e->regions[i].len) {
			*region = i;
			*page = (addr - a) >> PAGE_SHIFT_;
			return 1;
		}
	}
	return 0;
}

static int bit_at(const uint64_t *v, uint64_t i)
{
	return (int)(v[i / 64] >> (i % 64) & 1);
}

/* The next run of set bits of `bits` in [i, hi): returns its first index
 * (hi if there is none) and sets *end past its last.  Clear words are
 * skipped whole. */
static uint64_t next_run(_Atomic uint64_t *bits, uint64_t i, uint64_t hi, uint64_t *end)
{
	while (i < hi) {
		uint64_t word = atomic_load_explicit(&bits[i / 64], memory_order_acquire) >> (i % 64);
		if (word) {
			i += (uint64_t)__builtin_ctzll(word);
			break;
		}
		i = (i / 64 + 1) * 64;
	}
	if (i >= hi) {
		*end = hi;
		return hi;
	}
	uint64_t s = i;
	while (i < hi && (atomic_load_explicit(&bits[i / 64], memory_order_acquire) >> (i % 64) & 1))
		i++;
	*end = i;
	return s;
}

static void count_unprotect(struct track *t)
{
	atomic_fetch_add_explicit(&t->e->live->unprotect_calls, 1, memory_order_relaxed);
}

/* A failure here cannot take a lock or format a message (we may be in a
 * signal handler): record the code, ask the run to stop; the writer turns
 * it into the run's error and removes all protection. */
static int unprotect_fault_ex(struct track *t, uint64_t addr, uint64_t len, int prephase)
{
	count_unprotect(t);
	int r = t->m->unprotect_fault(t, addr, len, prephase);
	if (r < 0) {
		int zero = 0;
		atomic_compare_exchange_strong(&t->fault_error, &zero, r);
		atomic_store(&t->e->cancel_requested, 1);
		copybuf_close(&t->cb);
	}
	return r;
}

static int unprotect_fault(struct track *t, uint64_t addr, uint64_t len)
{
	if (!t->keep)
		return unprotect_fault_ex(t, addr, len, 0) < 0;
	/* A kept track: the page is written after this pause, so the next
	 * snapshot needs it.  The mark follows the unprotect (a set bit means
	 * writable), under a ticket the next pause waits for; one queued
	 * for a retry marks and gives the ticket back there, as in the
	 * pre-phase. */
	atomic_fetch_add(&t->pre_inflight, 1);
	int r = unprotect_fault_ex(t, addr, len, 1);
	if (r == 0)
		track_prephase_unprotected(t, addr, len);
	if (r != 1)
		track_prephase_leave(t);
	return r < 0;
}

int track_unprotect_fault(struct track *t, uint64_t addr, uint64_t len)
{
	return unprotect_fault(t, addr, len);
}

/* A fault before the snapshot instant: the page is released at once and
 * marked, to be protected again before or in the pause.  The mark follows
 * the unprotect (here, or in track_prephase_unprotected for a queued one):
 * a set bit means the page is writable, which is what lets a pre-phase
 * round clear bits and protect again while faults go on (protect_spans). */
static enum track_fault_result fault_before_pause(struct track *t, struct track_region *tr, uint64_t first,
                                                  uint64_t n, uint64_t addr)
{
	int r = unprotect_fault_ex(t, addr, n * PAGE_SIZE_, 1);
	if (r == 0)
		track_set_bits(tr->dirty, first, n);
	if (r < 0)
		track_prephase_give_up(t, addr);
	/* Queued for a retry: the retry ends this fault. */
	if (r != 1)
		track_prephase_leave(t);
	return r < 0 ? TRACK_FAILED : TRACK_ALREADY_DONE;
}

/* Copies the pages of word w that this fault won into the copy buffer. */
static void save_won(struct track *t, uint32_t ri, uint64_t w, uint64_t won)
{
	const uint8_t *base = t->e->regions[ri].addr;
	for (uint64_t m = won; m; m &= m - 1) {
		uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(m);
		uint32_t slot;
		void *dst = copybuf_get(&t->cb, &slot);
		/* dst == NULL: the buffer is closed, the run is being abandoned;
		 * only let the threads go. */
		if (!dst)
			break;
		REGION_READ_BEGIN();
		memcpy(dst, base + pg * PAGE_SIZE_, PAGE_SIZE_);
		REGION_READ_END();
		copybuf_put(&t->cb, ri, pg, slot);
		atomic_fetch_add_explicit(&t->e->live->pages_faulted, 1, memory_order_relaxed);
	}
}

/* Removes protection from the pages `pages` of word w: in one call when
 * they are one contiguous block (`block`), else page by page.  Nonzero on
 * failure. */
static int unprotect_runs(struct track *t, uint8_t *base, uint64_t w, uint64_t pages, int block)
{
	if (block && pages) {
		uint64_t lo = w * 64 + (uint64_t)__builtin_ctzll(pages);
		uint64_t n = (uint64_t)__builtin_popcountll(pages);
		return unprotect_fault(t, (uint64_t)(uintptr_t)(base + lo * PAGE_SIZE_), n * PAGE_SIZE_);
	}
	for (uint64_t m = pages; m; m &= m - 1) {
		uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(m);
		if (unprotect_fault(t, (uint64_t)(uintptr_t)(base + pg * PAGE_SIZE_), PAGE_SIZE_))
			return 1;
	}
	return 0;
}

static enum track_fault_result fault_after_pause(struct track *t, uint32_t ri, uint64_t page, uint64_t addr,
                                                 enum track_fault_mode mode);

/* Async-signal-safe: atomics, memcpy, nanosleep and the method's unprotect. */
enum track_fault_result track_fault(struct track *t, uint64_t addr, enum track_fault_mode mode)
{
	uint32_t ri;
	uint64_t page;
	addr &= ~(uint64_t)(PAGE_SIZE_ - 1);
	if (!track_lookup(t, addr, &ri, &page))
		return TRACK_NOT_OURS;
	struct track_region *tr = &t->regions[ri];
	uint64_t unit = t->e->regions[ri].granule_pages;
	if (unit > 1) {
		page &= ~(unit - 1);
		addr = (uint64_t)(uintptr_t)(t->e->regions[ri].addr + page * PAGE_SIZE_);
	}
	/* Pre-phase: the snapshot instant has not come; the page only has to
	 * be protected again in the pause.  `pre_inflight` is raised before
	 * prephase is looked at (and prephase cleared before pre_inflight is
	 * read, in prephase_end), so the pause never scans the bitmap
	 * while a pre-phase fault is between its dirty mark and its unprotect. */
	int pre = mode == TRACK_FAULT_HANDLER_PRE;
	/* A kept track: raised before the pre-phase is looked at, so that the
	 * next run's track_reuse, which comes after the pre-phase is on
	 * again, waits for a fault of this run that still reads the page
	 * states before it clears them. */
	if (t->keep)
		atomic_fetch_add(&t->post_inflight, 1);
	if (pre)
		atomic_fetch_add(&t->pre_inflight, 1);   /* our own, on top of the batch's */
	else
		pre = track_prephase_enter(t);
	if (pre) {
		if (t->keep)
			atomic_fetch_sub(&t->post_inflight, 1);
		return fault_before_pause(t, tr, page, unit, addr);
	}
	if (!t->keep)
		return fault_after_pause(t, ri, page, addr, mode);
	/* A kept track: the next pause must not begin while this fault is
	 * between its decision and its mark. */
	atomic_fetch_add(&t->pre_inflight, 1);
	enum track_fault_result res = fault_after_pause(t, ri, page, addr, mode);
	track_prephase_leave(t);
	atomic_fetch_sub(&t->post_inflight, 1);
	return res;
}

static enum track_fault_result fault_after_pause(struct track *t, uint32_t ri, uint64_t page, uint64_t addr,
                                                 enum track_fault_mode mode)
{
	struct track_region *tr = &t->regions[ri];
	uint64_t unit = t->e->regions[ri].granule_pages;
	uint64_t w = page / 64, bit = 1ull << (page % 64);
	if (unit > 1)
		return track_huge_fault(t, ri, page, unit, mode);
	/* Fault-around: claim the aligned block of `around` pages with the
	 * faulting one (one word: around divides 64), save every page of it we
	 * win, and remove protection from the block in one call. */
	uint64_t around = t->fault_around, first = page, mask = bit;
	if (around > 1) {
		first = page & ~(around - 1);
		uint64_t n = t->e->regions[ri].pages - first < around ? t->e->regions[ri].pages - first : around;
		mask = (n >= 64 ? ~0ull : (1ull << n) - 1) << (first % 64);
	}
	uint64_t old = atomic_fetch_or(&tr->claimed[w], mask);
	if (old & bit) {
		if (mode == TRACK_FAULT_HANDLER) {
			if (atomic_load(&tr->done[w]) & bit)
				return unprotect_fault(t, addr, PAGE_SIZE_) ? TRACK_FAILED : TRACK_ALREADY_DONE;
			/* The writer owns it: ask it to unprotect its window as soon
			 * as the batch is written; that wakes the thread. */
			atomic_store(&t->flush_req, 1);
			/* Neighbours this call claimed must still be saved. */
			if ((mask & ~old) == 0)
				return TRACK_OWNED_ELSEWHERE;
		} else {
			/* In the faulting thread: wait for the owner (the writer,
			 * within one batch; or another faulting thread, within one
			 * copy). */
			for (unsigned spins = 0; !(atomic_load(&tr->done[w]) & bit); spins++) {
				if (atomic_load_explicit(&t->e->cancel_requested, memory_order_relaxed))
					break;
				struct timespec ts = { 0, spins < 64 ? 1000 : 20000 };
				nanosleep(&ts, NULL);
			}
			if ((mask & ~old) == 0)
				return unprotect_fault(t, addr, PAGE_SIZE_) ? TRACK_FAILED : TRACK_ALREADY_DONE;
		}
	}
	uint64_t won = mask & ~old;
	save_won(t, ri, w, won);
	uint64_t done = atomic_fetch_or(&tr->done[w], won) | won;
	/* One call over the block when all of it is saved; else our page(s). */
	if (around > 1 && (done & mask) == mask)
		won = mask;
	if (unprotect_runs(t, t->e->regions[ri].addr, w, won, around > 1 && won == mask))
		return TRACK_FAILED;
	return (old & bit) ? TRACK_OWNED_ELSEWHERE : TRACK_SAVED;
}

void track_host_wait(struct track *t, uint64_t ns, uint32_t tid)
{
	atomic_fetch_add_explicit(&t->host_wait_ns, ns, memory_order_relaxed);
	if (!tid)
		tid = 1;
	/* Open addressing; a full set only undercounts, a race with the
	 * writer's emptying only miscounts one window. */
	for (unsigned i = 0, h = (tid * 2654435761u) % TRACK_TIDS; i < 8; i++, h = (h + 1) % TRACK_TIDS) {
		uint32_t cur = atomic_load_explicit(&t->host_tids[h], memory_order_relaxed);
		if (cur == tid)
			return;
		if (cur == 0) {
			uint32_t zero = 0;
			if (atomic_compare_exchange_strong(&t->host_tids[h], &zero, tid)) {
				atomic_fetch_add_explicit(&t->host_ntids, 1, memory_order_relaxed);
				return;
			}
			if (zero == tid)
				return;
		}
	}
}

static int prephase_end(struct track *t, int timeout_ms)
{
	atomic_store(&t->prephase, 0);
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (atomic_load(&t->pre_inflight) > 0) {
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

int track_prephase_enter(struct track *t)
{
	if (!atomic_load(&t->prephase))
		return 0;
	atomic_fetch_add(&t->pre_inflight, 1);
	if (atomic_load(&t->prephase))
		return 1;
	atomic_fetch_sub(&t->pre_inflight, 1);
	return 0;
}

void track_prephase_leave(struct track *t)
{
	atomic_fetch_sub(&t->pre_inflight, 1);
}

int track_prephase_give_up(struct track *t, uint64_t addr)
{
	uint32_t ri;
	uint64_t pg;
	atomic_store(&t->pre_spoiled, 1);
	/* Pages unprotected without their marks: the written set is lost. */
	if (t->keep)
		atomic_store(&t->keep_broken, 1);
	if (!track_lookup(t, addr, &ri, &pg))
		return -EFAULT;
	const struct region *rg = &t->e->regions[ri];
	return t->m->unprotect(t, (uint64_t)(uintptr_t)rg->addr, rg->len);
}

static void pre_protect_rounds(struct track *t);

int track_pre_protect(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	uint64_t t0 = now_ns();
	t->protecting = 1;
	int r = t->m->protect_all(t);
	if (!r)
		pre_protect_rounds(t);
	atomic_store(&e->live->prewp_us, us_since(t0));
	if (r)
		return engine_fail(e, r, "cannot write-protect the regions before the pause: %s", strerror(-r));
	t->pre_protected = 1;
	return 0;
}

void track_prephase_unprotected(struct track *t, uint64_t addr, uint64_t len)
{
	uint32_t ri;
	uint64_t pg;
	if (track_lookup(t, addr, &ri, &pg))
		track_set_bits(t->regions[ri].dirty, pg, (len + PAGE_SIZE_ - 1) >> PAGE_SHIFT_);
}

/* Clears bits [first, end) of v; those that were set are added to acc
 * (if not NULL). */
static void clear_bits(_Atomic uint64_t *v, uint64_t first, uint64_t end, uint64_t *acc)
{
	while (first < end) {
		uint64_t w = first / 64, lo = first % 64;
		uint64_t n = end - first < 64 - lo ? end - first : 64 - lo;
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1) << lo);
		uint64_t old = atomic_fetch_and(&v[w], ~mask);
		if (acc)
			acc[w] |= old & mask;
		first += n;
	}
}

/* Protects the dirty pages again, one call per span of runs closer than
 * SPAN_GAP_PAGES: protecting a page that is protected already changes
 * nothing, and one call over a short gap costs less than a second call
 * (each call walks its range and flushes the TLB once).  With `clear`
 * (a round before the pause, faults still coming) each span's bits are
 * cleared before it is protected: a page written after the clear either
 * faults after the protect (and is marked again) or was unprotected by a
 * fault whose mark comes after its unprotect, so it is marked again too
 * (fault_before_pause).  Counts the dirty pages into *pages. */
static int protect_spans_acc(struct track *t, int clear, uint64_t *pages, uint64_t *const *acc);

static int protect_spans(struct track *t, int clear, uint64_t *pages)
{
	return protect_spans_acc(t, clear, pages, NULL);
}

/* protect_spans; with `clear`, the bits cleared are added to acc[region]
 * (if not NULL). */
static int protect_spans_acc(struct track *t, int clear, uint64_t *pages, uint64_t *const *acc)
{
	struct bgsnap_engine *e = t->e;
	*pages = 0;
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		struct region *rg = &e->regions[ri];
		_Atomic uint64_t *bits = t->regions[ri].dirty;
		uint64_t s, end = 0, ss = rg->pages, se = 0;
		for (;;) {
			s = next_run(bits, end, rg->pages, &end);
			if (ss < rg->pages && (s >= rg->pages || s - se > SPAN_GAP_PAGES)) {
				if (clear)
					clear_bits(bits, ss, se, acc ? acc[ri] : NULL);
				int r = t->m->protect_range(t, (uint64_t)(uintptr_t)(rg->addr + ss * PAGE_SIZE_),
				                            (se - ss) * PAGE_SIZE_);
				if (r)
					return r;
				ss = rg->pages;
			}
			if (s >= rg->pages)
				break;
			if (ss == rg->pages)
				ss = s;
			se = end;
			*pages += end - s;
		}
	}
	return 0;
}

static uint64_t dirty_count(struct track *t)
{
	uint64_t n = 0;
	for (uint32_t ri = 0; ri < t->e->region_count; ri++)
		for (uint64_t w = 0; w < t->regions[ri].words; w++)
			n += (uint64_t)__builtin_popcountll(atomic_load_explicit(&t->regions[ri].dirty[w],
			                                                         memory_order_relaxed));
	return n;
}

/* Rounds of protecting again, before the pause, what the host wrote during
 * the pre-protect (or the round before): each round is far shorter than
 * the one before (a span call costs less than the host's fault on a page),
 * so the pages left for the pause shrink geometrically, which keeps the
 * pause short under a host that writes fast.  Stops when few pages are
 * left or a round no longer halves them.  A failure only gives up the
 * pre-phase (the pause then protects everything). */
static void pre_protect_rounds(struct track *t)
{
	uint64_t last = UINT64_MAX;
	for (int round = 0; round < PRE_ROUNDS_MAX && !atomic_load(&t->pre_spoiled); round++) {
		uint64_t d = dirty_count(t);
		if (d <= PRE_ROUND_MIN_PAGES || d > last / 2)
			break;
		uint64_t done;
		if (protect_spans(t, 1, &done)) {
			atomic_store(&t->pre_spoiled, 1);
			break;
		}
		last = d;
	}
}

/* Protects the dirty pages in the pause; counts them into reprotect_pages. */
static int reprotect_dirty(struct track *t)
{
	uint64_t pages;
	int r = protect_spans(t, 0, &pages);
	if (!r)
		atomic_store(&t->e->live->reprotect_pages, pages);
	return r;
}

int track_protect_in_pause(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	/* The host's threads are stopped, so pre-phase faults are over but
	 * for their last steps; a second is generous.  No logging in here:
	 * the host's log callback might need a thread it has stopped. */
	if (prephase_end(t, 1000))
		return engine_fail(e, -ETIMEDOUT, "faults taken before the pause were still unresolved after a "
		                   "second in it (a thread the pause hook did not stop writes a region?)");
	int fe = atomic_load(&t->fault_error);
	if (fe)
		return engine_fail(e, fe, "cannot remove write protection from a page written before the pause: %s",
		                   strerror(-fe));
	if (t->keep) {
		/* The pages written since the last pause were made writable by
		 * their faults: protect them again, then hand the set to the
		 * chain; from here `dirty` collects the next one. */
		uint64_t n;
		t->protecting = 1;
		int r = protect_spans(t, 0, &n);
		if (r)
			return engine_fail(e, r, "cannot write-protect again the pages written since the last "
			                   "snapshot: %s", strerror(-r));
		incr_sync_take(t);
		if (incr_active(e))
			return incr_track_protect(t);
	} else if (incr_active(e)) {
		return incr_track_protect(t);
	}
	if (t->pre_protected) {
		if (!atomic_load(&t->pre_spoiled)) {
			int r = reprotect_dirty(t);
			if (!r)
				return 0;
			t->pause_fallback = r;
			atomic_store(&e->live->reprotect_pages, 0);
		} else {
			t->pause_fallback = 1;
		}
	}
	t->protecting = 1;
	int r = t->m->protect_all(t);
	return r ? engine_fail(e, r, "cannot write-protect the regions: %s%s", strerror(-r),
	                       r == -ENOMEM ? " (too many mappings: vm.max_map_count)" : "") : 0;
}

void track_discard(struct track *t, uint64_t start, uint64_t end, const char *what)
{
	struct bgsnap_engine *e = t->e;
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[ri].addr, b = a + e->regions[ri].len;
		uint64_t lo = start > a ? start : a, hi = end < b ? end : b;
		if (lo >= hi)
			continue;
		struct track_region *tr = &t->regions[ri];
		uint64_t last = (hi - a + PAGE_SIZE_ - 1) >> PAGE_SHIFT_;
		if (t->keep)
			track_kept_discard(t, start, end, strcmp(what, "MADV_DONTNEED/MADV_REMOVE") != 0);
		for (uint64_t pg = (lo - a) >> PAGE_SHIFT_; pg < last; pg++) {
			if (atomic_load(&tr->done[pg / 64]) & (1ull << (pg % 64)))
				continue;
			engine_fail(e, -EFAULT,
			            "region '%s': %s of [0x%" PRIx64 ", 0x%" PRIx64 ") during the snapshot "
			            "discarded pages that were not saved yet; the snapshot is abandoned "
			            "(regions must stay mapped and populated while a snapshot runs)",
			            e->regions[ri].name, what, lo, hi);
			copybuf_close(&t->cb);
			return;
		}
	}
}

int track_unprotect_all(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	int first = 0;
	for (uint32_t i = 0; i < e->region_count; i++) {
		int r = t->m->unprotect(t, (uint64_t)(uintptr_t)e->regions[i].addr, e->regions[i].len);
		count_unprotect(t);
		if (r && !first)
			first = r;
	}
	return first;
}

/* Writes ready fault copies.  Returns 0 or -errno. */
int track_drain_copies(struct track *t, int wait_ms)
{
	struct bgsnap_engine *e = t->e;
	struct copybuf_item items[DRAIN_MAX];
	struct fmt_page_ref refs[DRAIN_MAX];
	uint32_t n = copybuf_take(&t->cb, items, DRAIN_MAX, wait_ms);
	for (uint32_t i = 0; i < n; i++)
		refs[i] = (struct fmt_page_ref){ items[i].region, items[i].page, copybuf_slot(&t->cb, items[i].slot) };
	int r = n ? fmtw_page_list(&e->fw, refs, n) : 0;
	copybuf_release(&t->cb, items, n);
	if (n)
		engine_progress(e, &e->fw);
	/* After the release: the slots are free for faults while it sleeps.
	 * Never paced while the host is paused: that would lengthen the pause. */
	return r || !n || t->fin.paused ? r : pace_wait(&t->pace, e, e->fw.bytes_written);
}

/* Removes protection from the saved pages of [lo, hi) of a region, one call
 * per run of `done` pages: pages whose fault copy is still in flight are
 * left to their fault, which unprotects them itself. */
int track_flush_window(struct track *t, uint32_t ri, uint64_t lo, uint64_t hi)
{
	struct region *rg = &t->e->regions[ri];
	struct track_region *tr = &t->regions[ri];
	uint64_t t0 = now_ns(), s, end = lo, unit = rg->granule_pages;
	int r = 0;
	while (!r && (s = next_run(tr->done, end, hi, &end)) < hi) {
		/* Whole huge pages only: a fault still setting the done bits of
		 * one unprotects it itself. */
		uint64_t a = (s + unit - 1) / unit * unit, b = end / unit * unit;
		if (a >= b)
			continue;
		r = t->m->unprotect(t, (uint64_t)(uintptr_t)(rg->addr + a * PAGE_SIZE_), (b - a) * PAGE_SIZE_);
		count_unprotect(t);
	}
	atomic_fetch_add_explicit(&t->e->live->unprotect_us, us_since(t0), memory_order_relaxed);
	return r ? err_sys(&t->e->werr, r, "cannot remove write protection after saving pages") : 0;
}

/* Claims and writes the pages of [first, first+n) no fault has claimed, and
 * marks them done.  Returns 0 or -errno. */
static int write_batch(struct track *t, uint32_t ri, uint64_t first, uint64_t n)
{
	struct bgsnap_engine *e = t->e;
	struct region *rg = &e->regions[ri];
	struct track_region *tr = &t->regions[ri];
	uint64_t mine[SWEEP_PAGES / 64];
	uint64_t w0 = first / 64, nw = (n + 63) / 64;
	for (uint64_t j = 0; j < nw; j++) {
		uint64_t left = n - j * 64;
		uint64_t mask = left >= 64 ? ~0ull : (1ull << left) - 1;
		mine[j] = mask & ~atomic_fetch_or(&tr->claimed[w0 + j], mask);
	}
	uint64_t i = 0;
	while (i < n) {
		if (!bit_at(mine, i)) {
			i++;
			continue;
		}
		uint64_t s = i;
		while (i < n && bit_at(mine, i))
			i++;
		REGION_READ_BEGIN();
		int r = fmtw_pages(&e->fw, ri, first + s, i - s, rg->addr + (first + s) * PAGE_SIZE_);
		REGION_READ_END();
		if (r)
			return r;
	}
	for (uint64_t j = 0; j < nw; j++)
		atomic_fetch_or(&tr->done[w0 + j], mine[j]);
	return 0;
}

static int sweep_region(struct track *t, uint32_t ri)
{
	struct bgsnap_engine *e = t->e;
	struct region *rg = &e->regions[ri];
	uint64_t win = 0;   /* saved pages [win, first) still protected */
	/* Measured (1 GiB, one random writer): a call costs 3-9 ms whatever its
	 * size while the host runs, so the writer's unprotect time fell from
	 * 840 ms (4 MiB windows) to 495 (16 MiB), 335 (64 MiB), 232 (256 MiB)
	 * and 216 (one call); the saved-but-still-protected pages that the host
	 * then writes cost a fault each, but only a few thousand more. */
	uint64_t window = rg->pages / 16;
	window = window < WINDOW_MIN_PAGES ? WINDOW_MIN_PAGES : window > WINDOW_MAX_PAGES ? WINDOW_MAX_PAGES : window;
	/* hugetlb: a batch is one huge page. */
	uint64_t step = rg->granule_pages > 1 ? rg->granule_pages : SWEEP_PAGES;
	for (uint64_t first = 0; first < rg->pages; first += step) {
		int r = track_drain_copies(t, 0);
		if (r)
			return r;
		if (engine_cancelled(e))
			return -ECANCELED;
		uint64_t n = rg->pages - first < step ? rg->pages - first : step;
		/* A batch every page of which is claimed already (an incremental
		 * run claims all but the written pages in its pause) has nothing
		 * to read: no look, no write.  At 2 GiB that is 8192 mincore
		 * calls an incremental snapshot no longer makes. */
		uint64_t full = n >= 64 ? ~0ull : (1ull << n) - 1;
		int all_claimed = step == SWEEP_PAGES && (atomic_load(&t->regions[ri].claimed[first / 64]) & full) == full;
		if (!all_claimed) {
			/* The host may have unmapped the region against the contract; the
			 * mprotect method has no event to tell.  Reading a hole would
			 * crash the host: look first (one call per batch). */
			unsigned char vec[SWEEP_PAGES];
			uint64_t look = n < SWEEP_PAGES ? n : SWEEP_PAGES;
			if (mincore(rg->addr + first * PAGE_SIZE_, look * PAGE_SIZE_, vec) < 0 && errno == ENOMEM)
				return engine_fail(e, -EFAULT,
				                   "region '%s': [%p, +%llu bytes) is no longer mapped (munmap or mremap "
				                   "during the snapshot); the snapshot is abandoned", rg->name,
				                   (void *)(rg->addr + first * PAGE_SIZE_), (unsigned long long)(n * PAGE_SIZE_));
			r = step == SWEEP_PAGES ? write_batch(t, ri, first, n) : track_write_huge(t, ri, first, n);
			if (r)
				return r;
			engine_progress(e, &e->fw);
		}
		/* Unprotecting costs a TLB flush per call on these machines:
		 * defer it over a window, unless a thread waits on this batch. */
		uint64_t end = first + n;
		/* Host paused to finish: no fault can come, and the writer
		 * removes all protection at once at the end. */
		if (t->fin.paused)
			continue;
		if (t->keep) {
			/* Saved pages stay protected: a fault on one marks it for the
			 * next snapshot.  A thread waiting on a page of ours faults
			 * again once woken, and finds it saved. */
			if ((atomic_exchange(&t->flush_req, 0) || end == rg->pages) && t->m->wake) {
				r = t->m->wake(t, (uint64_t)(uintptr_t)(rg->addr + win * PAGE_SIZE_), (end - win) * PAGE_SIZE_);
				if (r)
					return err_sys(&e->werr, r, "cannot wake the threads waiting on saved pages");
				win = end;
			}
		} else if (atomic_exchange(&t->flush_req, 0) || end - win >= window || end == rg->pages) {
			r = track_flush_window(t, ri, win, end);
			if (r)
				return r;
			win = end;
		}
		/* After the flush: a fault waiting on this batch does not wait
		 * out the pacing too. */
		r = pace_wait(&t->pace, e, e->fw.bytes_written);
		if (!r && end < rg->pages)
			r = track_finish_check(t, ri, &win, end);
		if (r)
			return r;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct track *t = arg;
	struct bgsnap_engine *e = t->e;
	int r = 0;
	uint64_t t0 = now_ns();
	pace_init(&t->pace, e->opts.max_bytes_per_s, e->fw.bytes_written);
	for (uint32_t ri = 0; ri < e->region_count && !r; ri++)
		r = sweep_region(t, ri);
	/* Pages claimed by faults arrive through the copy buffer. */
	while (!r && e->fw.pages_written < incr_pages_due(e) && !atomic_load(&t->fault_error)) {
		if (engine_cancelled(e))
			r = -ECANCELED;
		else
			r = track_drain_copies(t, 10);
	}
	if (!r && t->fin.paused) {
		/* Every page is in the file: nothing left to protect. */
		r = track_unprotect_all(t);
		if (r)
			r = engine_fail(e, r, "could not remove write protection after finishing paused: %s",
			                strerror(-r));
		else
			track_finish_resume(t);
	}
	int fe = atomic_load(&t->fault_error);
	if (fe)
		r = engine_fail(e, fe, "a faulting thread could not remove write protection from a page it "
		                "saved: %s%s", strerror(-fe),
		                fe == -ENOMEM ? " (too many mappings: vm.max_map_count)" : "");
	if (!r && engine_cancelled(e))
		r = -ECANCELED;
	if (!r)
		r = engine_finish_file(e, &e->fw, &e->sink, &e->werr);
	engine_progress(e, &e->fw);
	atomic_store(&e->live->writer_us, us_since(t0));
	atomic_store(&e->live->fault_wait_us, atomic_load(&t->host_wait_ns) / 1000);
	if (r) {
		/* Let every blocked thread go before anything else: threads
		 * waiting in a signal handler for a page we will never save
		 * watch cancel_requested. */
		atomic_store(&e->cancel_requested, 1);
		copybuf_close(&t->cb);
		int ur = track_unprotect_all(t);
		if (ur)
			engine_fail(e, ur, "could not remove write protection everywhere: %s", strerror(-ur));
		track_finish_resume(t);
	}
	copybuf_close(&t->cb);
	uint64_t peak = (uint64_t)copybuf_peak(&t->cb) * PAGE_SIZE_;
	atomic_store(&e->live->copybuf_peak, peak);
	atomic_store(&e->live->extra_mem_peak, peak);
	if (!r && t->keep) {
		/* Every page is saved and still protected but those written
		 * since the pause (marked): tracking goes on, as a pre-phase. */
		t->keep_ok = 1;
		atomic_store(&t->prephase, 1);
	} else if (t->m->writer_end) {
		t->m->writer_end(t);
	}
	t->writer_rc = r;
	return NULL;
}

int track_launch(struct track *t)
{
	if (t->pause_fallback > 0)
		engine_log(t->e, BGSNAP_LOG_INFO, "a region was discarded, moved or ran out of mappings before the "
		           "pause: the pause write-protected all of it");
	else if (t->pause_fallback < 0)
		engine_log(t->e, BGSNAP_LOG_INFO, "protecting the pages written before the pause failed (%s): the "
		           "pause write-protected everything", strerror(-t->pause_fallback));
	int r = thread_start(&t->writer, "bgsnap-writer", writer_main, t);
	if (r)
		return r;
	t->writer_started = 1;
	return 0;
}

int track_join(struct track *t)
{
	if (t->writer_started) {
		pthread_join(t->writer, NULL);
		t->writer_started = 0;
	}
	int r = t->writer_rc;
	/* A failure recorded elsewhere (a discarded region) explains a cancel
	 * better than the cancel itself. */
	if (t->e->err.code && r == -ECANCELED)
		r = t->e->err.code;
	return r;
}

void track_kept_discard(struct track *t, uint64_t start, uint64_t end, int moved)
{
	struct bgsnap_engine *e = t->e;
	if (moved) {
		/* The range is no longer the registered one. */
		atomic_store(&t->keep_broken, 1);
		return;
	}
	/* Discarded anonymous memory keeps no protection marker: its next
	 * write does not fault.  Its content (zero now) is the next
	 * snapshot's, and the pause protects it again. */
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[ri].addr, b = a + e->regions[ri].len;
		uint64_t lo = start > a ? start : a, hi = end < b ? end : b;
		if (lo < hi)
			track_set_bits(t->regions[ri].dirty, (lo - a) >> PAGE_SHIFT_,
			               ((hi - a + PAGE_SIZE_ - 1) >> PAGE_SHIFT_) - ((lo - a) >> PAGE_SHIFT_));
	}
}

int track_kept_prearm(struct track *t, uint64_t *const *acc)
{
	/* As pre_protect_rounds, keeping what each round clears: each round
	 * is far shorter than the one before, so the pause is left with the
	 * pages written during the last one. */
	uint64_t last = UINT64_MAX;
	for (int round = 0; round < PRE_ROUNDS_MAX; round++) {
		uint64_t d = dirty_count(t);
		if (round > 0 && (d <= PRE_ROUND_MIN_PAGES || d > last / 2))
			break;
		uint64_t done;
		int r = protect_spans_acc(t, 1, &done, acc);
		if (r)
			return engine_fail(t->e, r, "cannot write-protect again the pages written since the last "
			                   "snapshot: %s", strerror(-r));
		last = d;
	}
	return 0;
}

int track_reuse(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	/* A fault of the last run still looking at the page states (all
	 * saved: it only has to see that) must be done before they are
	 * cleared, or it would wait for a page nobody saves. */
	uint64_t deadline = now_ns() + 1000000000ull;
	while (atomic_load(&t->post_inflight) > 0) {
		if (now_ns() > deadline)
			return err_set(&e->err, -ETIMEDOUT, "a write fault of the last snapshot was still "
			               "unresolved after a second");
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct track_region *tr = &t->regions[i];
		for (uint64_t w = 0; w < tr->words; w++) {
			atomic_store(&tr->claimed[w], 0);
			atomic_store(&tr->done[w], 0);
		}
	}
	if (t->cb_ready) {
		size_t len;
		void *mem = copybuf_detach(&t->cb, &len);
		if (mem && !incr_copybuf_keep(e, mem, len))
			munmap(mem, len);
		copybuf_destroy(&t->cb);
		t->cb_ready = 0;
	}
	int r = copybuf_open(t);
	if (r)
		return r;
	atomic_store(&t->flush_req, 0);
	t->keep_ok = 0;
	t->protecting = 1;   /* what is protected must be undone if this run fails */
	t->writer_started = 0;
	t->writer_rc = 0;
	t->pause_fallback = 0;
	atomic_store(&e->live->copybuf_capacity, (uint64_t)t->cb.nslots * PAGE_SIZE_);
	return 0;
}

void track_kept_destroy(struct track *t)
{
	if (t->pid == getpid()) {
		track_unprotect_all(t);
		if (t->m->writer_end)
			t->m->writer_end(t);
		if (t->m->release)
			t->m->release(t);
	}
	/* In a fork child the handler thread does not exist and the
	 * descriptor names the parent's memory: only the memory goes. */
	if (t->cb_ready) {
		size_t len;
		void *mem = copybuf_detach(&t->cb, &len);
		if (mem)
			munmap(mem, len);
		copybuf_destroy(&t->cb);
		t->cb_ready = 0;
	}
	track_free(t);
	free(t->method);
	free(t);
}
