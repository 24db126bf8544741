/*
 * incr.h - chains of snapshots (options.chain): every snapshot carries a
 * lineage (format version 3), and once one has committed, the next may
 * hold only the pages written since its pause (an incremental snapshot).
 *
 * Who knows what:
 *  - the write tracker (dirty.h) stays registered between snapshots; a
 *    pre-scan before the pause and a scan in it each collect and re-arm,
 *    and the union of the two is exactly what changed since the parent's
 *    pause instant (the pause's scan only finds what was written after
 *    the pre-scan, which keeps the pause short);
 *  - the engine keeps the last committed snapshot's id, file_crc and
 *    depth as the next parent; a run that fails or is cancelled after its
 *    pause consumed the written set, so the next snapshot is full;
 *  - uffd and uffd-signal track with their own synchronous write-protect
 *    instead (track.h, `keep`): it stays registered between snapshots,
 *    a fault there marks the page and unprotects it, and the pause
 *    protects the marked pages again and takes them as the written set;
 *  - otherwise the copy-before-write of the snapshot itself must not need a second
 *    userfaultfd on the regions (a range has one): chains run the stop
 *    method (everything in the pause), mprotect (PROT_READ + SIGSEGV
 *    over the written pages only, layered on the tracker's protection)
 *    or fork (the child's copy-on-write view; the child's areas lose the
 *    registration at fork, the host's keep it, and a host write that
 *    breaks the sharing clears the page's write-protect bit like any
 *    first write, so the next scan finds it).
 *
 * The hooks are called by engine.c (start, pause, end), method_stop.c and
 * track.c; each does nothing when options.chain is off.
 */
#ifndef BGSNAP_INCR_H
#define BGSNAP_INCR_H

#include "engine/dirty.h"
#include "engine/engine.h"

struct track;
struct reset_src;

struct incr {
	struct dirty_tracker dt;
	int open;                 /* dt registered on the regions */
	int broken;               /* its last scan failed: reopen before the next run */
	int want;                 /* bgsnap_set_incremental */
	int have_parent;          /* the last run committed and the tracker ran since its pause */
	uint8_t parent_id[FMT_ID_LEN];
	uint32_t parent_crc, parent_depth;
	/* The current run. */
	struct fmt_lineage lin;
	int run_incr;
	int scanned;
	int prescanned;           /* incr_begin collected and re-armed: the pause adds to its set */
	uint64_t due;
	/* bgsnap_reset (reset.c): the snapshot it resets to, open, and
	 * the pages of it read so far. */
	struct reset_src *reset;
	/* The copy buffer's memory between the runs of a chain (track.c):
	 * an incremental pause copies the written pages into it, and slots
	 * touched once cost no page fault there again.  cb_warm: slots
	 * touched so far. */
	void *cb_mem;
	size_t cb_len;
	uint64_t cb_warm;
	const void *cb_warm_mem;  /* the buffer cb_warm counts in */
	size_t cb_warm_len;
	/* The pre-scan's set per region (the pause's scan finds what was
	 * written after it; the run's set is the union). */
	uint64_t **pset;
	/* Pages of the pre-scan's set copied into the copy buffer before the
	 * pause (incr_warm_copybuf); in the pause, those written again since
	 * are copied again, and all are handed to the writer. */
	struct incr_precopy { uint32_t region, slot; uint64_t page; } *pc;
	uint64_t npc, pc_cap;
	/* The huge-page survey (thp.c) of the chain's last full run, per
	 * region: an incremental run reuses it instead of reading smaps. */
	uint8_t *huge;
	int huge_known;
	/* uffd and uffd-signal: the method's own synchronous write-protect
	 * is the tracker (track.keep); dt is not opened, its bitmaps only
	 * receive the written set in the pause.  `kept`: the track of the
	 * last committed run, registered and tracking. */
	int sync;
	struct track *kept;
};


/* start_check: checks the method for a chain (AUTO: mprotect, else stop)
 * and the kernel; may rewrite *method.  0 or -errno with the message. */
int incr_check(struct bgsnap_engine *e, int *method);
/* Before the header: opens the tracker if needed (may be slow), decides
 * full or incremental and makes the lineage.  0 or -errno. */
int incr_begin(struct bgsnap_engine *e);
/* The lineage for the header, NULL without a chain. */
const struct fmt_lineage *incr_lineage(const struct bgsnap_engine *e);
/* In the pause, before ops->protect: collects and re-arms the written
 * pages.  Fails the run only when it is incremental. */
int incr_pause(struct bgsnap_engine *e);
/* 1 while the current run is incremental. */
int incr_active(const struct bgsnap_engine *e);
/* The pages the current run writes (pages_total unless incremental). */
uint64_t incr_pages_due(const struct bgsnap_engine *e);
/* Stop (in the pause) and fork (in the child), incremental: writes the
 * written pages, at most at options.max_bytes_per_s if `paced`. */
int incr_write_dirty(struct bgsnap_engine *e, struct fmt_writer *w, int paced);
/* Tracking methods, incremental: in the pause, marks the pages not
 * written since the parent as saved (they are the parent's) and protects
 * the written runs only.  0 or -errno. */
int incr_track_protect(struct track *t);
/* Tracking methods, incremental, before the pause: populates the copy
 * buffer's slots incr_track_protect will likely fill (as many as the
 * last scan found, and some), so that the pause takes no page faults. */
void incr_warm_copybuf(struct track *t);
/* Tracking methods, incremental, before the pause, once the method has
 * checked the regions: copies the pages the pre-scan found into the copy
 * buffer (the pause hands over those not written again since). */
void incr_precopy(struct track *t);
/* The copy buffer's memory kept from the last run of the chain (the
 * caller owns it now), or NULL. */
void *incr_copybuf_take(struct bgsnap_engine *e, size_t *len);
/* Keeps the copy buffer's memory for the next run: 1, or 0 without a
 * chain (the caller unmaps it). */
int incr_copybuf_keep(struct bgsnap_engine *e, void *mem, size_t len);
/* Incremental runs: sets regions[].huge from the last full run's survey
 * and returns 1; else 0 (the engine surveys, then calls incr_thp_keep). */
int incr_thp_known(struct bgsnap_engine *e);
void incr_thp_keep(struct bgsnap_engine *e);
/* 1 if the chain's tracker is the method's own write-protect (uffd,
 * uffd-signal): the track outlives its runs. */
int incr_tracks_itself(const struct bgsnap_engine *e);
/* The kept track for this run (the caller owns it now), or NULL. */
struct track *incr_track_take(struct bgsnap_engine *e);
/* Keeps a committed run's track for the next run: 1, or 0 (the caller
 * frees it). */
int incr_track_keep(struct bgsnap_engine *e, struct track *t);
/* Before the pause of a run on a kept track: an incremental run starts
 * its written set with the pages protected again now (track_kept_prearm).
 * 0 or -errno. */
int incr_sync_prearm(struct track *t);
/* In the pause of a run on a kept track, once its written pages are
 * protected again: adds them to the written set in dt's bitmaps and
 * clears the track's for the next one. */
void incr_sync_take(struct track *t);
/* The regions are about to change (a region added): a kept track ends,
 * and the next snapshot is full. */
void incr_regions_change(struct bgsnap_engine *e);
/* The run ended with `r`: a committed run becomes the next parent. */
void incr_end(struct bgsnap_engine *e, int r);
void incr_free(struct bgsnap_engine *e);
/* Frees what bgsnap_reset keeps (reset.c). */
void reset_free(struct incr *in);

#endif
