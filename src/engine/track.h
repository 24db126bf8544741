/*
 * track.h - what every write-tracking method shares (uffd, uffd-signal,
 * mprotect): who saves which page, the fault copy path, and the background
 * writer that sweeps the regions, and their life cycle (track_ops.c).  A
 * method supplies only what differs (struct track_method): how protection
 * is added and removed, and how a fault reaches track_fault().
 *
 * Page states, one `claimed` and one `done` bit per page:
 *
 *            pause
 *   [clean] -------> [protected] --writer claims--> [writer owns] --written--> [done] --unprotect--> [free]
 *                         |                                                      ^
 *                         +--write fault: claims, copies into the copy buffer ---+ (unprotect)
 *
 * Invariants:
 *  - a page is claimed once (atomic fetch_or), so it is saved exactly once;
 *  - protection is removed from a page only once its `done` bit is set,
 *    i.e. its pause-instant content is in the sink or in the copy buffer;
 *  - a faulting thread waits for one page copy, for buffer space, or for
 *    the owner of the page to finish saving it (at most one batch);
 *  - a saved page may stay protected for a while (the writer unprotects a
 *    window at once); a fault on it just removes the protection.
 * The fault path takes no lock and allocates nothing: it runs in signal
 * handlers (uffd-signal, mprotect) as well as in the uffd handler thread.
 */
#ifndef BGSNAP_TRACK_H
#define BGSNAP_TRACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine/copybuf.h"
#include "engine/engine.h"
#include "engine/pace.h"

struct track_region {
	_Atomic uint64_t *claimed;
	_Atomic uint64_t *done;
	_Atomic uint64_t *dirty;   /* pre-phase: written since the pre-protect */
	uint64_t words;
};

struct track;

#define TRACK_TIDS 64u   /* host threads told apart per window */

/*
 * What a tracking method supplies; everything else (the life cycle as
 * struct method_ops, the writer, the fault path) is shared.  Its state is
 * a zeroed block of priv_size bytes at track.method, there before anything
 * can fail.
 */
struct track_method {
	size_t priv_size;
	/* Before the pause, once the track is set up: open, register,
	 * install the fault path; may end with track_pre_protect.  On
	 * failure what it made is left to writer_end and release. */
	int (*prepare)(struct track *t);
	/* Protect every region, or one run [addr, addr+len).  0 or -errno. */
	int (*protect_all)(struct track *t);
	int (*protect_range)(struct track *t, uint64_t addr, uint64_t len);
	/* Removes protection from [addr, addr+len) and lets threads waiting
	 * on it go; used by the writer.  Returns 0 or -errno. */
	int (*unprotect)(struct track *t, uint64_t addr, uint64_t len);
	/* The same for one page on the fault path: async-signal-safe.  May
	 * return 1: queued, retried later by the method (the uffd handler
	 * must not wait out EAGAIN); a retried pre-phase page (`prephase`)
	 * then gives back its ticket with track_prephase_leave(). */
	int (*unprotect_fault)(struct track *t, uint64_t addr, uint64_t len, int prephase);
	/* Optional, after the pause and before the writer starts: drop what
	 * only the pause needed. */
	void (*after_pause)(struct track *t);
	/* Optional cleanup once every page is saved or the run failed (after
	 * protection is gone), run by the writer thread, or by abort: stop
	 * helpers, unregister.  Idempotent. */
	void (*writer_end)(struct track *t);
	/* Optional: frees what prepare made, after writer_end; also after a
	 * prepare that failed midway. */
	void (*release)(struct track *t);
	/* Optional, in a child the host forks while the track takes faults in
	 * the faulting thread (fault_signal.c, from pthread_atfork; must be
	 * async-signal-safe): make the child's copy of the regions plain
	 * writable memory again, for nothing in the child saves pages. */
	void (*fork_child)(struct track *t);
	/* For a chain that this method tracks itself (track.keep): wakes the
	 * threads waiting in a fault on [addr, addr+len) without removing
	 * the protection, so that they fault again on a saved page (the
	 * writer leaves saved pages protected).  0 or -errno. */
	int (*wake)(struct track *t, uint64_t addr, uint64_t len);
	/* A track kept from the chain's last run starts a new one: restart
	 * what the pause needs (prepare's helpers).  0 or -errno. */
	int (*resume)(struct track *t);
};

struct track {
	struct bgsnap_engine *e;
	const struct track_method *m;
	void *method;              /* the method's own state (priv_size bytes) */
	struct track_region *regions;
	struct copybuf cb;
	int cb_ready;
	int prepared;              /* m->prepare was called: writer_end/release due */
	int protecting;            /* a protect call was made: unprotect on abort */
	_Atomic int fault_error;   /* first unprotect failure on the fault path */
	_Atomic int flush_req;     /* a thread waits on a page the writer owns */
	uint64_t fault_around;     /* pages saved per fault: 1, 2, 4, ... 64 */
	/* The pre-phase: from track_init to the pause.  The regions may be
	 * protected already (track_pre_protect); a fault then only marks its
	 * page dirty and removes the protection, and the pause protects the
	 * dirty pages again.  A discard event then is no loss either. */
	_Atomic int prephase;
	_Atomic int pre_inflight;  /* pre-phase faults whose unprotect is not done */
	_Atomic int pre_spoiled;   /* a region changed in the pre-phase: protect all */
	int pre_protected;         /* track_pre_protect succeeded */
	int pause_fallback;        /* the pause protected all instead: -errno, or 1 if spoiled */
	/* A chain tracked by this method's own write-protect (uffd,
	 * uffd-signal; incr.h): the registration, the fault path and the
	 * `dirty` bitmap outlive a run that commits.  The writer leaves the
	 * pages it saved protected; a fault that removes protection after
	 * the pause marks its page in `dirty` (written since this pause);
	 * after the run the pre-phase is on again, until the next pause. */
	int keep;
	int keep_ok;               /* the writer finished with everything protected */
	_Atomic int keep_broken;   /* a region was unmapped or moved while tracked */
	_Atomic int post_inflight; /* kept track: faults that may read claimed/done */
	pid_t pid;                 /* the address space the registration is in */
	/* What the host's faults cost it (track_host_wait): the summed time
	 * its threads waited in them, and which threads (a small open set
	 * of thread ids, emptied by the writer every window). */
	_Atomic uint64_t host_wait_ns;
	_Atomic uint32_t host_tids[TRACK_TIDS];
	_Atomic unsigned host_ntids;
	/* Finishing paused (track_finish.c); writer-only but for fin_done. */
	struct track_finish {
		uint64_t win_t0, win_runq0, win_wait0, win_pages0;
		unsigned heavy;        /* consecutive windows that favoured a stop */
		int refused;           /* the pause hook failed: never again */
		int paused;            /* host paused by us: resume due */
		uint64_t t_pause;      /* the pause hook's call */
		uint64_t pages_at_pause;
		pthread_t hook_thread;
		_Atomic int hook_done; /* the pause hook returned */
		int hook_rc;
	} fin;
	pthread_t writer;
	struct pace pace;          /* the writer's rate limit */
	int writer_started;
	int writer_rc;
};

/* The tracking methods' struct method_ops, but for method, probe and
 * track (track_ops.c): prepare allocates the track and the method's state
 * and calls m->prepare; protect is track_protect_in_pause; launch starts
 * the writer; join joins it; cancel closes the copy buffer; abort removes
 * all protection; release frees. */
int track_op_prepare(struct bgsnap_engine *e);
int track_op_protect(struct bgsnap_engine *e);
int track_op_launch(struct bgsnap_engine *e);
int track_op_join(struct bgsnap_engine *e);
void track_op_cancel(struct bgsnap_engine *e);
void track_op_abort(struct bgsnap_engine *e);
void track_op_release(struct bgsnap_engine *e);

#define TRACK_LIFE_CYCLE \
	.caps = METHOD_WRITES_BESIDE_HOST | METHOD_SPLITS_HUGE_PAGES, .prepare = track_op_prepare, .protect = track_op_protect, \
	.launch = track_op_launch, .join = track_op_join, .cancel = track_op_cancel, \
	.abort = track_op_abort, .release = track_op_release

/* Sets up `t` for method `m` with its state `priv`: t->method is set
 * before anything can fail, so that abort and release work on a track
 * whose init failed.  Returns 0 or -errno with the message in e->err. */
int track_init(struct track *t, struct bgsnap_engine *e, const struct track_method *m, void *priv);
void track_free(struct track *t);

/* The copy buffer a run gets: the option, raised to one huge page of the
 * largest hugetlb region up to TRACK_COPYBUF_HUGE_MAX (a fault copies
 * its whole huge page). */
#define TRACK_COPYBUF_HUGE_MAX (64u << 20)
size_t track_copybuf_bytes(const struct bgsnap_engine *e);

/* The bytes protected and unprotected as one at `addr`: its region's huge
 * page for hugetlb memory, else a page. */
uint64_t track_unit_bytes(const struct track *t, uint64_t addr);

/* Sets bits [first, first+n) of v, lowest first (track_huge.c). */
void track_set_bits(_Atomic uint64_t *v, uint64_t first, uint64_t n);

/* Removes protection from [addr, addr+len) on the fault path (the method's
 * unprotect_fault, its failure recorded and the run stopped); nonzero on
 * failure.  Async-signal-safe. */
int track_unprotect_fault(struct track *t, uint64_t addr, uint64_t len);

/* Finds the region and page of `addr`; 0 if it is in no region. */
int track_lookup(const struct track *t, uint64_t addr, uint32_t *region, uint64_t *page);

enum track_fault_mode {
	/* uffd handler thread: a page owned by someone else is left to its
	 * owner, whose unprotect wakes the faulting thread. */
	TRACK_FAULT_HANDLER,
	/* in the faulting thread (signal): wait until the owner has saved the
	 * page, then remove protection ourselves. */
	TRACK_FAULT_INLINE,
	/* uffd handler thread holding a pre-phase ticket for the batch the
	 * fault came in (track_prephase_enter): a pre-phase fault, even if
	 * the pause has begun to end the pre-phase. */
	TRACK_FAULT_HANDLER_PRE,
};

enum track_fault_result {
	TRACK_NOT_OURS = 0,     /* not in any region */
	TRACK_SAVED,            /* claimed, copied, unprotected */
	TRACK_OWNED_ELSEWHERE,  /* HANDLER mode: owner not done yet */
	TRACK_ALREADY_DONE,     /* saved earlier (HANDLER: wake it; INLINE: unprotected) */
	TRACK_FAILED,           /* unprotect failed; the run is failing */
};

/* The fault path.  `addr` is any address in the page. */
enum track_fault_result track_fault(struct track *t, uint64_t addr, enum track_fault_mode mode);

/* A write fault after the pause on huge page [first, first+n) of hugetlb
 * region ri (track_huge.c): as track_fault for the whole huge page. */
enum track_fault_result track_huge_fault(struct track *t, uint32_t ri, uint64_t first, uint64_t n,
                                         enum track_fault_mode mode);

/* The writer's part for huge page [first, first+n) of hugetlb region ri:
 * written and marked done unless a fault claimed it.  0 or -errno. */
int track_write_huge(struct track *t, uint32_t ri, uint64_t first, uint64_t n);

/* Before the pause (end of prepare): starts the pre-phase and protects
 * every region with m->protect_all, timing it into the prewp_us statistic.
 * From here on a fault only marks its page dirty and removes the
 * protection.  Returns 0 or -errno with the message in e->err. */
int track_pre_protect(struct track *t);

/* The protect step, in the pause.  Without a pre-protect: protect_all.
 * With one: ends the pre-phase (waiting up to a second for pre-phase
 * faults still being resolved: one whose unprotect met EAGAIN is retried
 * by the uffd handler), then protects the dirty runs with protect_range,
 * or everything with protect_all if the pre-phase was spoiled (a region
 * discarded, moved, or out of mappings) or protect_range failed.  Returns
 * 0 or -errno with the message in e->err. */
int track_protect_in_pause(struct track *t);

/* A ticket on the pre-phase: returns 1 with `pre_inflight` raised if the
 * pre-phase is on (the pause then waits for track_prephase_leave), else 0.
 * Each pre-phase fault holds one until its unprotect is done (a retry
 * queued on EAGAIN leaves it held until the retry).  The uffd handler also
 * reads and handles each batch of messages under one: the kernel lets a
 * thread blocked on an event go as soon as the event is read, so it may
 * park in the pause hook before the handler has handled it. */
int track_prephase_enter(struct track *t);
void track_prephase_leave(struct track *t);

/* A pre-phase unprotect of the page at `addr` failed, or cannot be done
 * alone (mprotect out of mappings): removes protection from its whole
 * region, so that the thread gets past its write, and has the pause
 * protect everything.  Async-signal-safe.  Returns 0 or -errno. */
int track_prephase_give_up(struct track *t, uint64_t addr);

/* A pre-phase fault's queued unprotect of [addr, addr+len) has passed:
 * marks the pages dirty (a mark always follows its unprotect). */
void track_prephase_unprotected(struct track *t, uint64_t addr, uint64_t len);

/* Marks every page of [start,end) as discarded by the host (MADV_DONTNEED,
 * munmap, mremap): fails the run if any of them was not saved yet. */
void track_discard(struct track *t, uint64_t start, uint64_t end, const char *what);

/* The host's thread `tid` (0: unknown) waited `ns` in a write fault after
 * the pause.  Async-signal-safe. */
void track_host_wait(struct track *t, uint64_t ns, uint32_t tid);

/*
 * Finishing paused (track_finish.c), for the writer between batches.
 * track_finish_check: every window of FINISH_WINDOW_MS, weighs what the
 * host loses to its faults against what stopping it for the rest would
 * cost; when stopping wins (BGSNAP_PARAM_FINISH_PAUSED), it unprotects the
 * saved pages of [*win, end) of region ri, calls the pause hook (from a
 * helper thread, the writer draining fault copies meanwhile) and sets
 * t->fin.paused.  From then on the writer writes the rest with no fault
 * possible.  Returns 0 or -errno.  track_finish_resume: once every page is
 * written or the run failed, and every protection is gone: the resume
 * hook; nothing if not paused.
 */
int track_finish_check(struct track *t, uint32_t ri, uint64_t *win, uint64_t end);
void track_finish_resume(struct track *t);
/* Used by track_finish.c: track.c's writer steps. */
int track_drain_copies(struct track *t, int wait_ms);
int track_flush_window(struct track *t, uint32_t ri, uint64_t lo, uint64_t hi);

/* Starts the writer thread (ops->launch). */
int track_launch(struct track *t);
/* Joins the writer (ops->join); returns the run's result. */
int track_join(struct track *t);
/* Removes protection from every region (the way out of any failure);
 * returns the first error. */
int track_unprotect_all(struct track *t);

/* A kept track: [start, end) was discarded (moved: unmapped or moved
 * away).  Async-signal-safe. */
void track_kept_discard(struct track *t, uint64_t start, uint64_t end, int moved);
/* A kept track (track.keep) starts the next run of its chain: the page
 * bitmaps but `dirty` cleared, a copy buffer again.  0 or -errno. */
int track_reuse(struct track *t);
/* Before the pause of an incremental run on a kept track, host running:
 * protects the pages written since the last pause again, in rounds,
 * moving their bits into acc[region] (the pause adds the few written
 * meanwhile).  0 or -errno with the message. */
int track_kept_prearm(struct track *t, uint64_t *const *acc);
/* Ends a kept track: no protection left, the method cleaned up and
 * freed, the track freed.  In another process (a fork child of the
 * host) only frees the memory: the registration is the parent's. */
void track_kept_destroy(struct track *t);

#endif
