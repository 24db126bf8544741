/*
 * engine.h - the engine's private state, shared by engine.c and the method
 * files (method_uffd.c, method_fork.c, method_stop.c, ...).
 *
 * engine.c owns the life cycle: regions, hooks, the pause sequence, the
 * result and the statistics.  A method owns how the first write to a page
 * after the pause is caught and who writes what; it plugs in through
 * struct method_ops.
 */
#ifndef BGSNAP_ENGINE_H
#define BGSNAP_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bgsnap.h"
#include "util/err.h"
#include "util/page.h"
#include "format/format.h"
#include "sink/sink.h"
#include "engine/pace.h"


struct region {
	char name[FMT_NAME_MAX + 1];
	uint8_t *addr;
	uint64_t len;
	uint64_t pages;
	uint64_t first_global;   /* index of its first page in the engine-wide page numbering */
	int shared;              /* MAP_SHARED (memfd/shmem): fork cannot snapshot it */
	int huge;                /* mostly huge pages when the run started (thp.c) */
	/* 4 KiB pages per protection unit: 1, or 512 (2 MiB) / 262144 (1 GiB)
	 * for hugetlb memory, which is protected, copied and unprotected only
	 * by whole huge pages (track.c). */
	uint64_t granule_pages;
};

struct state_blob {
	char name[FMT_NAME_MAX + 1];
	void *data;
	size_t len;
};

struct bgsnap_state {
	struct state_blob *blobs;
	size_t count, cap;
	uint64_t bytes;
};

/* Counters readable at any time by bgsnap_get_stats.  They live in a
 * MAP_SHARED page so that a fork child's progress is the parent's too. */
struct live_stats {
	_Atomic int method;             /* the method of the current/last run */
	_Atomic int error;              /* its result, once it ended          */
	_Atomic uint64_t pause_us;
	_Atomic uint64_t wp_us;
	_Atomic uint64_t total_us;
	_Atomic uint64_t state_bytes;
	_Atomic uint64_t uffd_features;
	_Atomic uint64_t copybuf_capacity;
	_Atomic uint64_t pages_saved;
	_Atomic uint64_t pages_zero;
	_Atomic uint64_t pages_faulted;
	_Atomic uint64_t bytes_written;
	_Atomic uint64_t copybuf_peak;
	_Atomic uint64_t extra_mem_peak;
	_Atomic uint64_t unprotect_calls;
	_Atomic uint64_t unprotect_us;
	_Atomic uint64_t commit_us;
	_Atomic uint64_t prewp_us;
	_Atomic uint64_t reprotect_pages;
	_Atomic int direct_io;
	_Atomic uint64_t writer_us;      /* set once the writer ends */
	/* Chains (incr.c). */
	_Atomic int tracking;
	_Atomic int incremental;
	_Atomic uint32_t depth;
	_Atomic uint64_t dirty_pages;
	_Atomic uint64_t scan_us;
	_Atomic uint64_t prescan_us, prescan_pages;
	/* Finishing paused (track_finish.c). */
	_Atomic int finished_paused;
	_Atomic uint64_t finish_pause_us, finish_hook_us, finish_pages;
	_Atomic uint64_t fault_wait_us, fault_threads_max;
	/* Compressing (fmt_writer). */
	_Atomic uint64_t chunks_compressed, chunks_raw;
};

struct bgsnap_engine;

/* What a method is, for the engine's decisions (method_ops.caps): the
 * engine asks these, never which method it runs. */
enum {
	/* The file is written by a thread of this process while the host
	 * runs: worth O_DIRECT from a sink thread (options.direct_io). */
	METHOD_WRITES_BESIDE_HOST = 1u << 0,
	/* A MAP_SHARED region cannot be snapshotted (a fork child would see
	 * it change): refused before anything starts. */
	METHOD_NO_SHARED_REGIONS = 1u << 1,
	/* Runs while the host writes with per-page protection or
	 * copy-on-write, which splits transparent huge pages: the engine
	 * collapses them again when the run ends (thp.c). */
	METHOD_SPLITS_HUGE_PAGES = 1u << 2,
	/* The file is written by a forked child, which can start no thread:
	 * no compressor threads, the writer compresses. */
	METHOD_WRITES_IN_CHILD = 1u << 3,
};

struct track_method;

/* Every op but protect is optional: NULL means there is nothing to do
 * (probe: it can run anywhere; join: the run ended with protect). */
struct method_ops {
	int method;
	unsigned caps;                  /* METHOD_* flags */
	/* Can it run here?  Writes the reason into `err` when not. */
	int (*probe)(struct bgsnap_err *err);
	/* Before the pause: allocate, open, register.  May be slow. */
	int (*prepare)(struct bgsnap_engine *e);
	/* In the pause, after save_state: protect (or fork, or write all). */
	int (*protect)(struct bgsnap_engine *e);
	/* After resume: start the background work.  Returns 0 or -errno;
	 * on failure nothing may have started (abort and release follow). */
	int (*launch)(struct bgsnap_engine *e);
	/* Background work ends: called by bgsnap_wait; joins threads, undoes
	 * every protection, returns 0 or -errno (message in e->err). */
	int (*join)(struct bgsnap_engine *e);
	/* Cancel request from any thread, under run_lock, once launched:
	 * wake whatever blocks. */
	void (*cancel)(struct bgsnap_engine *e);
	/* Undo prepare/protect after a failure up to and including launch. */
	void (*abort)(struct bgsnap_engine *e);
	/* Free what prepare allocated, after join or abort; also after a
	 * prepare that failed midway. */
	void (*release)(struct bgsnap_engine *e);
	/* The tracking methods: what differs between them (track.h); their
	 * ops above are track.c's shared life cycle.  NULL for the others. */
	const struct track_method *track;
};

struct incr;

struct bgsnap_engine {
	struct bgsnap_options opts;
	unsigned fault_around_pages;    /* BGSNAP_PARAM_FAULT_AROUND_PAGES */
	unsigned thp_collapse;          /* BGSNAP_PARAM_THP_COLLAPSE */
	int64_t finish_paused;          /* BGSNAP_PARAM_FINISH_PAUSED */
	struct bgsnap_hooks hooks;
	struct region *regions;
	uint32_t region_count;
	uint64_t pages_total;

	/* One snapshot at a time; everything below is per run. */
	_Atomic int run_state;          /* enum bgsnap_run_state */
	int starting;                   /* inside bgsnap_start (hooks running) */
	int launched;                   /* background work started (run_lock) */
	pthread_mutex_t run_lock;       /* orders cancel against the end of a run */
	int result;
	const struct method_ops *ops;
	void *method_priv;
	struct sink sink;
	struct fmt_writer fw;
	struct bgsnap_state state;
	struct fmt_meta meta;
	_Atomic int cancel_requested;
	/* The API's error (bgsnap_errmsg).  While a run is in flight, threads
	 * other than the writer record into it only through engine_fail(). */
	struct bgsnap_err err;
	pthread_mutex_t err_lock;
	/* The writer's own errors (format and sink), merged into `err` at the end. */
	struct bgsnap_err werr;
	struct live_stats *live;        /* shared mapping, see struct live_stats */
	uint64_t t_start_ns, t_pause_ns;
	struct incr *incr;              /* options.chain: the tracker and the parent (incr.c) */
};

/* Thread-safe error recording for background threads (first one wins). */
int engine_fail(struct bgsnap_engine *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int engine_cancelled(struct bgsnap_engine *e);
void engine_log(struct bgsnap_engine *e, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Writes the state blobs, the index and the trailer, then commits the sink.
 * Runs in whichever thread or process writes the tail. */
int engine_finish_file(struct bgsnap_engine *e, struct fmt_writer *w, struct sink *s,
                       struct bgsnap_err *err);
/* Writes every page of every region through `w` (stop, fork), at most at
 * options.max_bytes_per_s if `paced` (fork's child; stop writes in the
 * pause and is never paced). */
int engine_write_all(struct bgsnap_engine *e, struct fmt_writer *w, int paced);
/* The loop under engine_write_all, for writers of some pages only (an
 * incremental snapshot's written set): init once, then one call per run
 * [lo, hi) of region ri, in chunks that see cancel, progress and pace. */
struct engine_writeout {
	struct pace pace;
	uint64_t step;                 /* pages per fmtw_pages call */
};
void engine_writeout_init(struct bgsnap_engine *e, struct engine_writeout *o, const struct fmt_writer *w, int paced);
int engine_write_span(struct bgsnap_engine *e, struct fmt_writer *w, struct engine_writeout *o, uint32_t ri,
                      uint64_t lo, uint64_t hi);
/* Publishes a writer's progress to the live statistics. */
void engine_progress(struct bgsnap_engine *e, const struct fmt_writer *w);

/* The ops that run `method` (AUTO: the first that can run here), once
 * its probe passed; else -errno with the reason in err (methods.c). */
int engine_resolve_method(int method, const struct method_ops **out, struct bgsnap_err *err);

extern const struct method_ops method_uffd_ops;
extern const struct method_ops method_uffd_signal_ops;
extern const struct method_ops method_mprotect_ops;
extern const struct method_ops method_fork_ops;
extern const struct method_ops method_stop_ops;

#endif
