/*
 * reset.c - bgsnap_reset: the regions back to the content of the last
 * snapshot of a chain, by copying back only the pages written since its
 * pause, while the host is paused.
 *
 * The write tracker's set since the last pause is exactly what differs
 * from that snapshot (pages discarded included).  The reset collects it
 * without re-arming (the pages stay writable: copying into them costs no
 * fault), copies those pages back from the snapshot, then protects just
 * those pages again: afterwards the memory equals the snapshot, and the
 * tracker's set is empty, as it was at the snapshot's pause.  The chain's parent stays the same, so the
 * next snapshot is still incremental over it.
 *
 * Each page is read from the file once (through the checked reader) and
 * kept: a harness resets the same few pages thousands of times, and the
 * later resets are a scan and a memcpy per page.  What is kept is freed
 * when a snapshot runs (the parent changes) or the engine is destroyed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/incr.h"
#include "format/reader_int.h"
#include "util/clock.h"

/* A protect call of its own costs ~1.1-1.4 us here (its TLB flush), a
 * re-arming walk ~2 ns per page of the regions (0.4-0.6 ms per GiB,
 * t_dirty_scan_cost): calls up to one per RESET_WALK_PAGES_PER_CALL pages
 * of the regions are cheaper than the walk. */
#define RESET_WALK_PAGES_PER_CALL 600u

struct reset_src {
	char *path;
	bgsnap_reader *rd;
	uint32_t region_count;
	uint64_t *npages;        /* per region */
	uint8_t ***pages;        /* per region, per page: the snapshot's page, or NULL */
};

void reset_free(struct incr *in)
{
	struct reset_src *rs = in->reset;
	if (!rs)
		return;
	for (uint32_t ri = 0; rs->pages && ri < rs->region_count; ri++) {
		if (!rs->pages[ri])
			continue;
		for (uint64_t p = 0; p < rs->npages[ri]; p++)
			free(rs->pages[ri][p]);
		free(rs->pages[ri]);
	}
	free(rs->pages);
	free(rs->npages);
	if (rs->rd)
		bgsnap_reader_close(rs->rd);
	free(rs->path);
	free(rs);
	in->reset = NULL;
}

/* Opens the snapshot and checks that it is the chain's last one. */
static int src_open(struct bgsnap_engine *e, struct incr *in, const char *path)
{
	if (in->reset && !strcmp(in->reset->path, path))
		return 0;
	reset_free(in);
	struct reset_src *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return err_set(&e->err, -ENOMEM, "out of memory");
	in->reset = rs;
	rs->region_count = e->region_count;
	rs->path = strdup(path);
	rs->pages = calloc(e->region_count, sizeof(*rs->pages));
	rs->npages = calloc(e->region_count, sizeof(*rs->npages));
	if (!rs->path || !rs->pages || !rs->npages) {
		reset_free(in);
		return err_set(&e->err, -ENOMEM, "out of memory");
	}
	char msg[512] = "";
	int r = bgsnap_reader_open(&rs->rd, path, msg, sizeof(msg));
	if (r) {
		rs->rd = NULL;
		reset_free(in);
		return err_set(&e->err, r, "cannot open the snapshot to reset to: %s", msg);
	}
	if (memcmp(rs->rd->id, in->parent_id, FMT_ID_LEN) || rs->rd->file_crc_stored != in->parent_crc ||
	    rs->rd->region_count != e->region_count) {
		reset_free(in);
		return err_set(&e->err, -ESTALE, "%s is not the last snapshot this engine took: a reset "
		               "returns to the last one only", path);
	}
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		rs->pages[ri] = calloc(e->regions[ri].pages, sizeof(uint8_t *));
		rs->npages[ri] = e->regions[ri].pages;
		if (!rs->pages[ri]) {
			reset_free(in);
			return err_set(&e->err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* The snapshot's page `p` of region `ri`, read once; NULL on failure
 * (message in e->err). */
static const uint8_t *page_of(struct bgsnap_engine *e, struct reset_src *rs, uint32_t ri, uint64_t p)
{
	uint8_t **slot = &rs->pages[ri][p];
	if (*slot)
		return *slot;
	uint8_t *pg = aligned_alloc(PAGE_SIZE_, PAGE_SIZE_);
	if (!pg) {
		err_set(&e->err, -ENOMEM, "out of memory");
		return NULL;
	}
	int r = bgsnap_reader_read_page(rs->rd, ri, p, pg);
	if (r) {
		err_set(&e->err, r, "cannot read page %llu of region '%s' from the snapshot: %s",
		        (unsigned long long)p, e->regions[ri].name, bgsnap_reader_errmsg(rs->rd));
		free(pg);
		return NULL;
	}
	*slot = pg;
	return pg;
}

/* Copies back the pages the scan found written.  Returns the count or
 * -errno (message in e->err). */
static int64_t copy_back(struct bgsnap_engine *e, struct incr *in)
{
	int64_t n = 0;
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		struct region *rg = &e->regions[ri];
		const uint64_t *bits = in->dt.bits[ri];
		for (uint64_t w = 0; w < (rg->pages + 63) / 64; w++) {
			for (uint64_t m = bits[w]; m; m &= m - 1) {
				uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(m);
				const uint8_t *src = page_of(e, in->reset, ri, p);
				if (!src)
					return e->err.code ? e->err.code : -EIO;
				memcpy(rg->addr + p * PAGE_SIZE_, src, PAGE_SIZE_);
				n++;
			}
		}
	}
	return n;
}

int64_t bgsnap_reset(bgsnap_engine *e, const char *path)
{
	if (!e || !path)
		return -EINVAL;
	if (e->starting || atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING)
		return err_set(&e->err, -EBUSY, "cannot reset while a snapshot runs");
	err_clear(&e->err);
	struct incr *in = e->incr;
	if (e->opts.chain && in && in->sync)
		return err_set(&e->err, -ENOTSUP, "bgsnap_reset needs the asynchronous write tracker (a chain of "
		               "mprotect, stop or fork); the %s method tracks with its own write-protect",
		               bgsnap_method_name(e->opts.method));
	if (!e->opts.chain || !in || !in->open || !in->have_parent)
		return err_set(&e->err, -ESTALE, "no snapshot to reset to: a reset needs options.chain and "
		               "a last snapshot that committed, with tracking unbroken since");
	int r = src_open(e, in, path);
	if (r)
		return r;
	if (e->hooks.pause && e->hooks.pause(e->hooks.ctx) != 0)
		return err_set(&e->err, -ECANCELED, "the pause hook failed; nothing was reset");
	struct bgsnap_err serr = { 0 };
	/* Collected without re-arming: the pages stay writable for the copy,
	 * which then costs no write fault, and only they are armed again. */
	int64_t n = dirty_collect(&in->dt, e->regions, e->region_count, 0, &serr);
	if (!n)
		n = copy_back(e, in);
	else
		err_set(&e->err, (int)n, "%s; nothing was reset", serr.msg);
	if (n >= 0) {
		uint64_t copied = in->dt.dirty_pages;
		int calls = dirty_rearm_calls(&in->dt, e->regions, e->region_count) <=
		            16 + e->pages_total / RESET_WALK_PAGES_PER_CALL;
		r = calls ? dirty_rearm_set(&in->dt, e->regions, e->region_count, &serr)
		          : dirty_scan(&in->dt, e->regions, e->region_count, &serr);
		in->dt.dirty_pages = copied;
		if (r)
			n = err_set(&e->err, r, "%s", serr.msg);
	}
	if (e->hooks.resume)
		e->hooks.resume(e->hooks.ctx);
	if (n < 0) {
		/* The memory is part reset or the tracker lost its set: only a
		 * full snapshot is right after this. */
		in->broken = 1;
		in->have_parent = 0;
	}
	return n;
}
