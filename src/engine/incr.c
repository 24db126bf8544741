/*
 * incr.c - chains and incremental snapshots on the engine side (incr.h).
 */
#include "engine/incr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "engine/pace.h"
#include "engine/track.h"
#include "os/uffd_sys.h"
#include "util/clock.h"
#include "util/tsan.h"


/* In incr_precopy.region: the page was written after it was copied. */
#define PRECOPY_STALE 0x80000000u

static struct incr *incr_get(struct bgsnap_engine *e)
{
	if (!e->incr) {
		e->incr = calloc(1, sizeof(*e->incr));
		if (e->incr) {
			e->incr->want = 1;
			e->incr->dt.uffd = -1;
			e->incr->dt.pagemap = -1;
		}
	}
	return e->incr;
}

int bgsnap_set_incremental(bgsnap_engine *e, int on)
{
	if (!e || (on != 0 && on != 1))
		return -EINVAL;
	if (e->starting || atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING)
		return err_set(&e->err, -EBUSY, "cannot change the next snapshot's kind while one runs");
	struct incr *in = incr_get(e);
	if (!in)
		return err_set(&e->err, -ENOMEM, "out of memory");
	in->want = on;
	return 0;
}

int incr_check(struct bgsnap_engine *e, int *method)
{
	if (!e->opts.chain)
		return 0;
	if (!incr_get(e))
		return err_set(&e->err, -ENOMEM, "out of memory");
	if (*method == BGSNAP_METHOD_AUTO)
		*method = bgsnap_method_probe(BGSNAP_METHOD_MPROTECT, NULL, 0) == 0 ? BGSNAP_METHOD_MPROTECT
		                                                                 : BGSNAP_METHOD_STOP;
	if (*method == BGSNAP_METHOD_UFFD || *method == BGSNAP_METHOD_UFFD_SIGNAL) {
		/* The method's own write-protect tracks: a page dropped between
		 * snapshots must be protectable again (WP_UNPOPULATED), and the
		 * drop must be seen (the events). */
		const uint64_t need = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
		                      UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP;
		uint64_t have = 0;
		struct bgsnap_err kerr = { 0 };
		int r = uffd_kernel_features(&have, &kerr);
		if (r)
			return err_set(&e->err, r, "%s", kerr.msg);
		if ((have & need) != need)
			return err_set(&e->err, -ENOTSUP,
			               "the %s method cannot take chained snapshots on this kernel: tracking with its "
			               "write-protect needs UFFD_FEATURE_WP_UNPOPULATED (Linux 6.2+) and the "
			               "remove/unmap/remap events; use mprotect, stop or fork",
			               bgsnap_method_name(*method));
		e->incr->sync = 1;
		e->opts.pre_protect = 0;
		return 0;
	}
	e->incr->sync = 0;
	/* fork's copy-before-write is the kernel's copy-on-write of the child,
	 * not a userfaultfd: the tracker stays in the host and the child, whose
	 * areas lose the registration at fork, only reads. */
	if (*method != BGSNAP_METHOD_MPROTECT && *method != BGSNAP_METHOD_STOP && *method != BGSNAP_METHOD_FORK)
		return err_set(&e->err, -ENOTSUP,
		               "the %s method cannot take chained snapshots: the write tracker holds "
		               "the regions' userfaultfd between snapshots; use mprotect, stop or fork",
		               bgsnap_method_name(*method));
	/* The pre-phase would protect pages the incremental run leaves to
	 * the parent; a chain protects only in the pause. */
	e->opts.pre_protect = 0;
	return dirty_probe(&e->err);
}

static void pset_free(struct incr *in, uint32_t n)
{
	for (uint32_t i = 0; in->pset && i < n; i++)
		free(in->pset[i]);
	free(in->pset);
	in->pset = NULL;
}

static void sync_bits_free(struct incr *in)
{
	for (uint32_t i = 0; in->dt.bits && i < in->dt.region_count; i++)
		free(in->dt.bits[i]);
	free(in->dt.bits);
	in->dt.bits = NULL;
	in->dt.region_count = 0;
}

static int sync_bits_alloc(struct bgsnap_engine *e, struct incr *in)
{
	if (in->dt.bits && in->dt.region_count == e->region_count)
		return 0;
	sync_bits_free(in);
	in->dt.bits = calloc(e->region_count ? e->region_count : 1, sizeof(*in->dt.bits));
	if (!in->dt.bits)
		return err_set(&e->err, -ENOMEM, "out of memory");
	in->dt.region_count = e->region_count;
	for (uint32_t i = 0; i < e->region_count; i++) {
		in->dt.bits[i] = calloc((e->regions[i].pages + 63) / 64, sizeof(uint64_t));
		if (!in->dt.bits[i]) {
			sync_bits_free(in);
			return err_set(&e->err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

static void tracker_close(struct bgsnap_engine *e, struct incr *in)
{
	in->huge_known = 0;
	if (in->kept) {
		track_kept_destroy(in->kept);
		in->kept = NULL;
	}
	pset_free(in, in->dt.region_count);
	if (in->open)
		dirty_close(&in->dt, e->regions, in->dt.region_count);
	else
		sync_bits_free(in);
	in->open = 0;
	in->broken = 0;
	in->have_parent = 0;
}

static int new_id(uint8_t *id, struct bgsnap_err *err)
{
	do {
		ssize_t n = getrandom(id, FMT_ID_LEN, 0);
		if (n != (ssize_t)FMT_ID_LEN)
			return err_sys(err, n < 0 ? -errno : -EIO, "cannot draw a snapshot id");
	} while (fmt_id_zero(id));
	return 0;
}

/* Keeps the pre-scan's set: 0, or -ENOMEM (then the pause's scan
 * accumulates over it instead, and nothing is copied before the pause). */
static int pset_save(struct bgsnap_engine *e, struct incr *in)
{
	if (!in->pset) {
		in->pset = calloc(e->region_count ? e->region_count : 1, sizeof(*in->pset));
		for (uint32_t i = 0; in->pset && i < e->region_count; i++) {
			in->pset[i] = malloc((e->regions[i].pages + 63) / 64 * sizeof(uint64_t));
			if (!in->pset[i]) {
				pset_free(in, e->region_count);
				break;
			}
		}
		if (!in->pset)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < e->region_count; i++)
		memcpy(in->pset[i], in->dt.bits[i], (e->regions[i].pages + 63) / 64 * sizeof(uint64_t));
	return 0;
}

static int sync_begin(struct bgsnap_engine *e, struct incr *in)
{
	if (in->open)
		tracker_close(e, in);
	struct track *k = in->kept;
	int broken = k && atomic_load(&k->keep_broken);
	if (k && (broken || atomic_load(&k->fault_error) || k->pid != getpid() ||
	          in->dt.region_count != e->region_count || k->m != e->ops->track)) {
		tracker_close(e, in);
		k = NULL;
	}
	if (!k)
		in->have_parent = 0;
	int r = sync_bits_alloc(e, in);
	if (r)
		return r;
	if (broken && in->want && in->parent_depth < FMT_MAX_DEPTH) {
		/* As the asynchronous tracker's scan: this run was to be
		 * incremental and says why it is not; the next one is full. */
		return err_set(&e->err, -EPERM, "a region was unmapped or moved since the parent snapshot: the "
		               "pages written since are unknown; the incremental snapshot is abandoned");
	}
	in->prescanned = 0;
	in->npc = 0;
	atomic_store(&e->live->prescan_us, 0);
	atomic_store(&e->live->prescan_pages, 0);
	return 0;
}

int incr_begin(struct bgsnap_engine *e)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in)
		return 0;
	if (in->sync) {
		int r = sync_begin(e, in);
		if (r)
			return r;
		goto lineage;
	}
	if (in->open && (in->broken || in->dt.region_count != e->region_count || in->dt.pid != getpid()))
		tracker_close(e, in);
	if (!in->open) {
		int r = dirty_open(&in->dt, e->regions, e->region_count, &e->err);
		if (r)
			return r;
		in->open = 1;
		in->have_parent = 0;
	}
	/* The pre-scan: collects and re-arms what was written so far while
	 * the host still runs, so that the pause's scan only finds what is
	 * written from here to the pause (the run's set is the union).  At
	 * 2 GiB with 1 % written the pause's scan fell from 15-27 ms to ~1 ms:
	 * re-arming a written entry costs far more than walking a clean one
	 * (a TLB flush per page table, an IPI when a host thread runs on
	 * another CPU). */
	uint64_t t0 = now_ns();
	struct bgsnap_err serr = { 0 };
	in->prescanned = 0;
	int pr = dirty_collect_ex(&in->dt, e->regions, e->region_count, 1, 0, &serr);
	if (pr && in->want && in->have_parent && in->parent_depth < FMT_MAX_DEPTH) {
		/* As a failed scan in the pause: this run was to be incremental
		 * and says why it is not; the next one is full. */
		in->broken = 1;
		in->have_parent = 0;
		return err_set(&e->err, pr, "%s; the incremental snapshot is abandoned", serr.msg);
	}
	if (pr) {
		/* A full run needs no written set: it goes on, on a tracker
		 * opened again (the old one's protection state is unknown). */
		tracker_close(e, in);
		int r = dirty_open(&in->dt, e->regions, e->region_count, &e->err);
		if (r)
			return r;
		in->open = 1;
	} else if (pset_save(e, in) == 0) {
		in->prescanned = 1;
	}
	in->npc = 0;
	atomic_store(&e->live->prescan_us, us_since(t0));
	atomic_store(&e->live->prescan_pages, in->prescanned ? in->dt.dirty_pages : 0);
lineage:
	memset(&in->lin, 0, sizeof(in->lin));
	int r = new_id(in->lin.id, &e->err);
	if (r)
		return r;
	in->run_incr = in->want && in->have_parent && in->parent_depth < FMT_MAX_DEPTH;
	if (in->run_incr) {
		memcpy(in->lin.parent_id, in->parent_id, FMT_ID_LEN);
		in->lin.parent_file_crc = in->parent_crc;
		in->lin.depth = in->parent_depth + 1;
	}
	/* From the pause on, the written set belongs to this run. */
	in->have_parent = 0;
	in->scanned = 0;
	in->due = e->pages_total;
	atomic_store(&e->live->tracking, in->sync ? BGSNAP_TRACKING_UFFD_SYNC : BGSNAP_TRACKING_UFFD_ASYNC);
	atomic_store(&e->live->incremental, in->run_incr);
	atomic_store(&e->live->depth, in->lin.depth);
	return 0;
}

const struct fmt_lineage *incr_lineage(const struct bgsnap_engine *e)
{
	return e->opts.chain && e->incr ? &e->incr->lin : NULL;
}

int incr_pause(struct bgsnap_engine *e)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in || in->sync)
		return 0;
	struct bgsnap_err serr = { 0 };
	/* After a pre-scan whose set was kept, the scan finds what was
	 * written since (which tells the pre-copies that are stale), and the
	 * run's set is the union. */
	int keep = in->prescanned && in->pset;
	int r = dirty_collect_ex(&in->dt, e->regions, e->region_count, 1, in->prescanned && !keep, &serr);
	atomic_store(&e->live->scan_us, in->dt.scan_us);
	if (!r && keep) {
		for (uint64_t i = 0; i < in->npc; i++)
			if (dirty_test(&in->dt, in->pc[i].region, in->pc[i].page))
				in->pc[i].region |= PRECOPY_STALE;
		uint64_t n = 0;
		for (uint32_t ri = 0; ri < e->region_count; ri++) {
			uint64_t *b = in->dt.bits[ri];
			for (uint64_t w = 0; w < (e->regions[ri].pages + 63) / 64; w++) {
				b[w] |= in->pset[ri][w];
				n += (uint64_t)__builtin_popcountll(b[w]);
			}
		}
		in->dt.dirty_pages = n;
	}
	if (r) {
		in->broken = 1;
		/* A full run needs no written set: it goes on, and tracking
		 * starts again with the next snapshot (a full one). */
		return in->run_incr ? engine_fail(e, r, "%s; the incremental snapshot is abandoned", serr.msg) : 0;
	}
	in->scanned = 1;
	atomic_store(&e->live->dirty_pages, in->dt.dirty_pages);
	if (in->run_incr)
		in->due = in->dt.dirty_pages;
	return 0;
}

int incr_active(const struct bgsnap_engine *e)
{
	return e->opts.chain && e->incr && e->incr->run_incr;
}

uint64_t incr_pages_due(const struct bgsnap_engine *e)
{
	return incr_active(e) ? e->incr->due : e->pages_total;
}

/* The next run of set bits in [i, hi) of `bits`: its start (hi if none),
 * its end in *end. */
static uint64_t bits_run(const uint64_t *bits, uint64_t i, uint64_t hi, uint64_t *end)
{
	while (i < hi && !((bits[i / 64] >> (i % 64)) & 1)) {
		if (i % 64 == 0 && bits[i / 64] == 0)
			i += 64;
		else
			i++;
	}
	if (i >= hi)
		return *end = hi;
	uint64_t s = i;
	while (i < hi && ((bits[i / 64] >> (i % 64)) & 1))
		i++;
	*end = i;
	return s;
}

int incr_write_dirty(struct bgsnap_engine *e, struct fmt_writer *w, int paced)
{
	struct incr *in = e->incr;
	struct engine_writeout o;
	engine_writeout_init(e, &o, w, paced);
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		uint64_t pages = e->regions[ri].pages, s, end = 0;
		while ((s = bits_run(in->dt.bits[ri], end, pages, &end)) < pages) {
			int r = engine_write_span(e, w, &o, ri, s, end);
			if (r)
				return r;
		}
	}
	return engine_cancelled(e) ? -ECANCELED : 0;
}

/* Copies written pages of region ri into the (still empty) copy buffer
 * while `budget` lasts, marking them saved and clearing them from the
 * written set; the writer drains them like fault copies. */
static void copy_in_pause(struct track *t, struct incr *in, uint32_t ri, uint64_t *budget)
{
	struct region *rg = &t->e->regions[ri];
	struct track_region *tr = &t->regions[ri];
	uint64_t *bits = in->dt.bits[ri], unit = rg->granule_pages;
	for (uint64_t w = 0; w < tr->words && *budget; w++) {
		uint64_t took = 0;
		for (uint64_t m = bits[w]; m && *budget; m &= m - 1) {
			uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(m);
			/* Whole huge pages only: the rest of a cut one would be
			 * left to a protect call that must start on its boundary. */
			if (unit > 1 && pg % unit == 0 && *budget < unit) {
				*budget = 0;
				break;
			}
			uint32_t slot;
			void *dst = copybuf_get(&t->cb, &slot);
			if (!dst) {
				*budget = 0;
				break;
			}
			REGION_READ_BEGIN();
			memcpy(dst, rg->addr + pg * PAGE_SIZE_, PAGE_SIZE_);
			REGION_READ_END();
			copybuf_put(&t->cb, ri, pg, slot);
			took |= 1ull << (pg % 64);
			(*budget)--;
		}
		atomic_fetch_or(&tr->claimed[w], took);
		atomic_fetch_or(&tr->done[w], took);
		bits[w] &= ~took;
	}
}

/* Copies the pre-scan's pages (up to `max`) into the copy buffer while
 * the host runs.  The pre-scan protected them again before this copy, so
 * a page the host writes after it was protected, before or after the
 * copy, is found by the pause's scan and copied again there: a copy of a
 * page the pause does not find holds its content at the pause. */
static void precopy(struct track *t, struct incr *in, uint64_t max)
{
	struct bgsnap_engine *e = t->e;
	in->npc = 0;
	if (!in->prescanned || !in->pset || !max)
		return;
	if (!in->pc || in->pc_cap < max) {
		free(in->pc);
		in->pc = malloc(max * sizeof(*in->pc));
		in->pc_cap = in->pc ? max : 0;
		if (!in->pc)
			return;
	}
	for (uint32_t ri = 0; ri < e->region_count && in->npc < max; ri++) {
		struct region *rg = &e->regions[ri];
		/* Huge pages are left to the pause, which takes them whole. */
		if (rg->granule_pages > 1)
			continue;
		const uint64_t *bits = in->pset[ri];
		for (uint64_t w = 0; w < (rg->pages + 63) / 64 && in->npc < max; w++) {
			for (uint64_t m = bits[w]; m && in->npc < max; m &= m - 1) {
				uint64_t pg = w * 64 + (uint64_t)__builtin_ctzll(m);
				uint32_t slot;
				void *dst = copybuf_get(&t->cb, &slot);
				if (!dst)
					return;
				REGION_READ_BEGIN();
				memcpy(dst, rg->addr + pg * PAGE_SIZE_, PAGE_SIZE_);
				REGION_READ_END();
				in->pc[in->npc++] = (struct incr_precopy){ .region = ri, .slot = slot, .page = pg };
			}
		}
	}
}

/* In the pause: hands the pre-copies to the writer, copying again those
 * written since; marks them saved and clears them from the written set. */
static void precopy_publish(struct track *t, struct incr *in, uint64_t *budget)
{
	struct bgsnap_engine *e = t->e;
	for (uint64_t i = 0; i < in->npc; i++) {
		struct incr_precopy *pc = &in->pc[i];
		uint32_t ri = pc->region & ~PRECOPY_STALE;
		struct region *rg = &e->regions[ri];
		if (pc->region & PRECOPY_STALE) {
			REGION_READ_BEGIN();
			memcpy(copybuf_slot(&t->cb, pc->slot), rg->addr + pc->page * PAGE_SIZE_, PAGE_SIZE_);
			REGION_READ_END();
		}
		copybuf_put(&t->cb, ri, pc->page, pc->slot);
		uint64_t bit = 1ull << (pc->page % 64);
		atomic_fetch_or(&t->regions[ri].claimed[pc->page / 64], bit);
		atomic_fetch_or(&t->regions[ri].done[pc->page / 64], bit);
		in->dt.bits[ri][pc->page / 64] &= ~bit;
	}
	*budget = *budget > in->npc ? *budget - in->npc : 0;
	in->npc = 0;
}

void incr_warm_copybuf(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	if (!incr_active(e))
		return;
	struct incr *in = e->incr;
	uint64_t want = in->dt.dirty_pages + in->dt.dirty_pages / 2 + 256;
	uint64_t max = t->cb.nslots / 2;
	want = want < max ? want : max;
	/* A write to each slot: measured here, slots populated with
	 * MADV_POPULATE_WRITE still cost ~15 us at their first write in the
	 * pause (2800 pages: 35-46 ms), slots written once before it cost
	 * nothing (0.15 ms).  The memory is kept across the chain's runs, so
	 * only slots never touched before cost their fault (here, outside
	 * the pause): at 2 GiB with 1 % written, touching the slots anew every
	 * run cost 190 ms of a 500 ms incremental snapshot.  A buffer that
	 * is not the one kept (the first run, or another size) is untouched. */
	if (t->cb.mem != in->cb_warm_mem || t->cb.mem_len != in->cb_warm_len)
		in->cb_warm = 0;
	in->cb_warm_mem = t->cb.mem;
	in->cb_warm_len = t->cb.mem_len;
	for (uint64_t i = in->cb_warm; i < want; i++)
		((volatile uint8_t *)t->cb.mem)[i * PAGE_SIZE_] = 0;
	if (want > in->cb_warm)
		in->cb_warm = want;
}

void incr_precopy(struct track *t)
{
	struct incr *in = t->e->incr;
	if (incr_active(t->e))
		precopy(t, in, t->cb.nslots / 2);
}

int incr_track_protect(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct incr *in = e->incr;
	t->protecting = 1;
	/* Protecting scattered pages one mprotect each splits the mapping
	 * into as many areas (measured: ~40 us a page here), while a memcpy
	 * of a page costs ~3 us: the written pages are copied in the pause
	 * while half the copy buffer lasts (it is empty now, so nothing
	 * waits), the rest protected as usual. */
	uint64_t budget = t->cb.nslots / 2;
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		struct region *rg = &e->regions[ri];
		struct track_region *tr = &t->regions[ri];
		for (uint64_t w = 0; w < tr->words; w++) {
			uint64_t keep = ~in->dt.bits[ri][w];
			if (w == tr->words - 1 && rg->pages % 64)
				keep &= (1ull << (rg->pages % 64)) - 1;
			atomic_store(&tr->claimed[w], keep);
			atomic_store(&tr->done[w], keep);
		}
	}
	precopy_publish(t, in, &budget);
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		struct region *rg = &e->regions[ri];
		copy_in_pause(t, in, ri, &budget);
		/* A kept track protected them already (track.c). */
		if (in->sync)
			continue;
		uint64_t s, end = 0;
		while ((s = bits_run(in->dt.bits[ri], end, rg->pages, &end)) < rg->pages) {
			int r = t->m->protect_range(t, (uint64_t)(uintptr_t)(rg->addr + s * PAGE_SIZE_),
			                            (end - s) * PAGE_SIZE_);
			if (r)
				return engine_fail(e, r, "cannot protect the pages written since the parent "
				                   "snapshot: %s", strerror(-r));
		}
	}
	return 0;
}

/* Reading /proc/self/smaps walks every page table of the process: 50-80
 * ms at 2 GiB of 4 KiB pages here, more than the rest of an incremental
 * snapshot that writes 1 % of it.  The regions stay the same across a
 * chain (the tracker is reopened when they change), so the full run's
 * survey stands for the chain. */
int incr_thp_known(struct bgsnap_engine *e)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in || !in->run_incr || !in->huge_known || !in->huge)
		return 0;
	for (uint32_t i = 0; i < e->region_count; i++)
		e->regions[i].huge = in->huge[i];
	return 1;
}

void incr_thp_keep(struct bgsnap_engine *e)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in)
		return;
	free(in->huge);
	in->huge = calloc(e->region_count ? e->region_count : 1, 1);
	in->huge_known = in->huge != NULL;
	for (uint32_t i = 0; in->huge && i < e->region_count; i++)
		in->huge[i] = (uint8_t)e->regions[i].huge;
}

void *incr_copybuf_take(struct bgsnap_engine *e, size_t *len)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in || !in->cb_mem)
		return NULL;
	void *m = in->cb_mem;
	*len = in->cb_len;
	in->cb_mem = NULL;
	return m;
}

int incr_copybuf_keep(struct bgsnap_engine *e, void *mem, size_t len)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in)
		return 0;
	if (in->cb_mem && in->cb_mem != mem)
		munmap(in->cb_mem, in->cb_len);
	in->cb_mem = mem;
	in->cb_len = len;
	return 1;
}

void incr_end(struct bgsnap_engine *e, int r)
{
	struct incr *in = e->incr;
	if (!e->opts.chain || !in)
		return;
	in->have_parent = !r && in->scanned && !in->broken && (!in->sync || in->kept);
	if (in->have_parent) {
		memcpy(in->parent_id, in->lin.id, FMT_ID_LEN);
		in->parent_crc = e->fw.file_crc;
		in->parent_depth = in->lin.depth;
	}
	in->run_incr = 0;
	/* What bgsnap_reset kept of the previous parent is stale now. */
	reset_free(in);
}

void incr_free(struct bgsnap_engine *e)
{
	if (!e->incr)
		return;
	tracker_close(e, e->incr);
	reset_free(e->incr);
	if (e->incr->cb_mem)
		munmap(e->incr->cb_mem, e->incr->cb_len);
	free(e->incr->huge);
	free(e->incr->pc);
	free(e->incr);
	e->incr = NULL;
}

int incr_tracks_itself(const struct bgsnap_engine *e)
{
	return e->opts.chain && e->incr && e->incr->sync;
}

struct track *incr_track_take(struct bgsnap_engine *e)
{
	if (!incr_tracks_itself(e))
		return NULL;
	struct track *t = e->incr->kept;
	e->incr->kept = NULL;
	return t;
}

int incr_track_keep(struct bgsnap_engine *e, struct track *t)
{
	if (!incr_tracks_itself(e) || e->incr->kept)
		return 0;
	e->incr->kept = t;
	return 1;
}

int incr_sync_prearm(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct incr *in = e->incr;
	uint64_t t0 = now_ns();
	for (uint32_t ri = 0; ri < e->region_count; ri++)
		memset(in->dt.bits[ri], 0, (e->regions[ri].pages + 63) / 64 * sizeof(uint64_t));
	int r = in->run_incr ? track_kept_prearm(t, in->dt.bits) : 0;
	atomic_store(&e->live->prescan_us, us_since(t0));
	return r;
}

void incr_sync_take(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct incr *in = e->incr;
	uint64_t n = 0;
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		struct track_region *tr = &t->regions[ri];
		for (uint64_t w = 0; w < tr->words; w++) {
			uint64_t b = atomic_exchange(&tr->dirty[w], 0) | in->dt.bits[ri][w];
			in->dt.bits[ri][w] = b;
			n += (uint64_t)__builtin_popcountll(b);
		}
	}
	in->dt.dirty_pages = n;
	in->scanned = 1;
	atomic_store(&e->live->scan_us, 0);
	atomic_store(&e->live->dirty_pages, n);
	if (in->run_incr)
		in->due = n;
}

void incr_regions_change(struct bgsnap_engine *e)
{
	struct incr *in = e->incr;
	if (!in || !in->kept)
		return;
	track_kept_destroy(in->kept);
	in->kept = NULL;
	in->have_parent = 0;
}
