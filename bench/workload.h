/*
 * workload.h - the bench workload (writer threads over one anonymous region)
 * (its pause-instant consistency oracle is oracle.h).
 *
 * Content model, shared by the writers and the oracle:
 *  - page p of the region starts with init content derived from p alone
 *    (some pages are left zero and never touched, to exercise zero records
 *    and never-populated pages);
 *  - the first `domain` pages are written by the threads; thread t owns the
 *    pages p < domain with p % threads == t, the rest (a cold tail) is never
 *    written;
 *  - at its step k (k = 0, 1, ...) thread t picks one of its pages by its
 *    pattern and stores wl_word0(k, t) in the page's first 8 bytes and
 *    wl_word0(k, t) ^ wl_page_mix(p) in its last 8 bytes, so a torn copy or a
 *    page copied to the wrong place is caught.
 * Step counts never restart while the region lives, so the expected content
 * of every page after n[t] steps of each thread is a pure function of
 * (config, n[]), which the oracle recomputes by replaying each thread's picks.
 *
 * Pausing costs nothing but the park itself: each writer does one acquire
 * load of a control word per step; at a pause each records its step count.
 */
#ifndef BGSNAP_BENCH_WORKLOAD_H
#define BGSNAP_BENCH_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WL_PAGE 4096u
#define WL_MAX_THREADS 64u

enum wl_pattern { WL_SEQ = 0, WL_RANDOM = 1, WL_HOT = 2 };
/* What the pages hold before they are written (--fill): MIXED, the
 * default, is an arithmetic sequence per page with some pages zero; RANDOM
 * does not compress; TEXT is words of a small vocabulary (compresses like
 * a real heap, about 3x); ZERO is every page zero.  Writes are the same. */
enum wl_fill { WL_FILL_MIXED = 0, WL_FILL_RANDOM = 1, WL_FILL_TEXT = 2, WL_FILL_ZERO = 3 };
/* "mixed", "random", "text", "zero"; NULL if out of range. */
const char *wl_fill_name(int fill);
/* Returns the fill or -1. */
int wl_fill_parse(const char *name);

/* "seq", "random", "hot"; NULL if out of range. */
const char *wl_pattern_name(int pattern);
/* Returns the pattern or -1. */
int wl_pattern_parse(const char *name);

/* What fully determines the content (with the step counts). */
struct wl_params {
	uint64_t npages;     /* pages in the region                           */
	unsigned threads;    /* 1..WL_MAX_THREADS                             */
	int pattern;         /* enum wl_pattern                               */
	uint64_t seed;
	int fill;            /* enum wl_fill                                  */
};

/* Pages written by the threads (the rest is a never-written cold tail). */
uint64_t wl_domain(const struct wl_params *p);
/* True if page p starts (and, outside the domain, stays) zero. */
bool wl_page_init_zero(const struct wl_params *p, uint64_t page);

/* What backs the region. */
enum wl_memory {
	WL_MEM_ANON = 0,      /* private anonymous, MADV_NOHUGEPAGE            */
	WL_MEM_THP,           /* private anonymous, MADV_HUGEPAGE              */
	WL_MEM_HUGETLB,       /* private MAP_HUGETLB, 2 MiB pages              */
	WL_MEM_MEMFD,         /* a memfd mapped MAP_SHARED                     */
	WL_MEM_MEMFD_HUGETLB, /* a memfd_create(MFD_HUGETLB) mapped MAP_SHARED */
};
/* "anon", "thp", "hugetlb", "memfd", "memfd-hugetlb"; NULL if out of range. */
const char *wl_memory_name(int memory);
/* Returns the kind or -1. */
int wl_memory_parse(const char *name);

struct wl_config {
	struct wl_params params;
	bool thp;            /* MADV_HUGEPAGE (else MADV_NOHUGEPAGE)            */
	int memory;          /* enum wl_memory; WL_MEM_THP when thp            */
};

/* Maps len bytes of memory `kind` (memkind.c) into *out: 0, or -errno with
 * the reason in err (-ENOMEM: e.g. no free hugetlb pages). */
int wl_map_memory(int kind, size_t len, uint8_t **out, char *err, size_t err_len);

/* The region's memory in huge pages, from /proc/self/smaps: transparent
 * (AnonHugePages, ShmemPmdMapped) and hugetlb (Private_/Shared_Hugetlb),
 * in units of 2 MiB.  -1 if smaps cannot be read. */
int64_t wl_huge_pages(const void *mem, size_t len);

typedef struct wl wl;

/*
 * Maps and fills the region (npages * 4 KiB, 2 MiB aligned).  Returns 0 or
 * -errno with a message in err.  No threads run yet.
 */
int wl_create(wl **out, const struct wl_config *cfg, char *err, size_t err_len);
/* Stops the writers if running and unmaps the region. */
void wl_destroy(wl *w);

void *wl_mem(const wl *w);
size_t wl_mem_bytes(const wl *w);
const struct wl_params *wl_get_params(const wl *w);

/* Starts the writer threads; they continue from their previous step counts. */
int wl_start(wl *w, char *err, size_t err_len);
/* Stops and joins the writers (no-op if not running). */
void wl_stop(wl *w);
/*
 * With the writers stopped: makes every page the writers write present and
 * writable without changing its content (MADV_POPULATE_WRITE), so first-touch
 * faults and what a previous snapshot method left behind (fork's copy-on-write
 * sharing) do not land on the next method's measurements; with THP, huge
 * pages split by a previous method are collapsed again (MADV_COLLAPSE).
 * Without THP the cold tail is left alone (its zero pages stay
 * never-populated).  The next wl_start's writers first rewrite each of their
 * pages' first word with its own value (see writer_main).  Best effort.
 */
void wl_settle(wl *w);
/* Steps done by all threads so far (a racy sum, for rates). */
uint64_t wl_total_steps(const wl *w);
/* Waits until every running thread made at least one step after this call;
 * -ETIMEDOUT after timeout_ms. */
int wl_wait_progress(wl *w, unsigned timeout_ms);

/*
 * Pauses the writers: returns once every writer is parked, with its step
 * count recorded (wl_paused_steps).  Call from one thread; pair with
 * wl_resume.  If arm_timing, wl_resume starts timing each thread's first
 * write to each of its pages (until wl_timing_off).
 */
void wl_pause(wl *w);
void wl_resume(wl *w, bool arm_timing);
void wl_timing_off(wl *w);
/* Thread t's kernel thread id (0 before it first ran). */
pid_t wl_thread_tid(const wl *w, unsigned t);
/* Step counts recorded at the last pause, one per thread. */
const uint64_t *wl_paused_steps(const wl *w);

/* First-write latencies timed since the last armed resume (call with the
 * writers stopped or paused). */
struct wl_latency {
	uint64_t samples;
	double p50_us, p99_us, max_us;
	/* The same over the first writes that took at least WL_TRAP_NS: those
	 * that trapped (a fault, a signal, a copy-on-write), as opposed to those
	 * that found their page already saved and writable. */
	uint64_t traps;
	double trap_p50_us, trap_p99_us;
};
#define WL_TRAP_NS 2000u
int wl_first_write_latency(const wl *w, struct wl_latency *out);

#endif
