/*
 * workload.c - writer threads over one anonymous region, the pause/resume
 * handshake and first-write timing (see workload.h for the content model,
 * content.h for the code the writers share with the oracle).
 *
 * Invariants:
 *  - a writer checks the control word once per step, before it picks; when it
 *    parks, the steps it recorded are exactly the writes it has completed;
 *  - step counts only grow while the region lives (wl_start continues them).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/clock.h"
#include "content.h"
#include "workload.h"

#define HUGE_ALIGN (2u << 20)

/* The control word: flags, and above them a generation bumped by every
 * resume.  Only the driving thread writes it. */
enum { CTL_PAUSE = 1u, CTL_STOP = 2u, CTL_GEN = 4u };

struct wl_thread {
	_Alignas(64) _Atomic uint64_t steps;  /* live count, for rates       */
	uint64_t next_step;                   /* where the next start resumes */
	uint64_t paused_at;                   /* published by `parked`        */
	struct wl *w;
	unsigned t;
	pthread_t tid;
	uint64_t n;                           /* pages owned                  */
	uint32_t *mark;                       /* epoch of last timed write    */
	uint32_t *samples;                    /* first-write latencies, ns    */
	uint64_t nsamples;
	_Atomic pid_t ktid;                   /* set by the thread itself     */
};

struct wl {
	struct wl_config cfg;
	uint64_t domain;
	uint8_t *mem;
	size_t len;
	_Alignas(64) _Atomic uint32_t ctl;
	_Alignas(64) _Atomic uint32_t parked;
	_Alignas(64) _Atomic uint32_t timing_epoch;
	uint32_t epoch;
	bool running;
	bool touch_next_start;                /* set by wl_settle             */
	bool touch_this_start;                /* read by the writers at start */
	uint64_t paused[WL_MAX_THREADS];
	struct wl_thread *th;
};

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/*
 * One store into the snapshotted memory.  The snapshot machinery reads these
 * pages concurrently, ordered only by the kernel's write protection, which
 * ThreadSanitizer cannot see: under TSAN the store is left uninstrumented
 * (and out of line, so it is not inlined into instrumented code).
 */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WL_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(WL_TSAN)
__attribute__((no_sanitize_thread, noinline)) static void page_store(uint64_t *p, uint64_t v)
{
	*(volatile uint64_t *)p = v;
}
__attribute__((no_sanitize_thread, noinline)) static uint64_t page_load(const uint64_t *p)
{
	return *(const volatile uint64_t *)p;
}
#else
static inline void page_store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline uint64_t page_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}
#endif

static void fill_page(uint8_t *pg, uint64_t page, int fill)
{
	uint64_t *w = (uint64_t *)(void *)pg;
	uint64_t m = page_mix(page);
	for (unsigned i = 0; i < WORDS; i++)
		w[i] = init_word(fill, m, i);
}

/* Maps the region (memkind.c) and fills it with its initial content. */
static int map_region(struct wl *w, char *err, size_t err_len)
{
	int rc = wl_map_memory(w->cfg.memory, w->len, &w->mem, err, err_len);
	if (rc)
		return rc;
	for (uint64_t pg = 0; pg < w->cfg.params.npages; pg++)
		if (!wl_page_init_zero(&w->cfg.params, pg))
			fill_page(w->mem + pg * WL_PAGE, pg, w->cfg.params.fill);
	return 0;
}

static int make_threads(struct wl *w, char *err, size_t err_len)
{
	const struct wl_params *p = &w->cfg.params;
	w->th = aligned_alloc(64, sizeof(*w->th) * p->threads);
	if (!w->th)
		return cli_fail(err, err_len, -ENOMEM, "out of memory");
	memset(w->th, 0, sizeof(*w->th) * p->threads);
	for (unsigned t = 0; t < p->threads; t++) {
		struct wl_thread *th = &w->th[t];
		th->w = w;
		th->t = t;
		th->n = owned_pages(p, w->domain, t);
		th->mark = calloc(th->n, sizeof(*th->mark));
		th->samples = calloc(th->n, sizeof(*th->samples));
		if (!th->mark || !th->samples)
			return cli_fail(err, err_len, -ENOMEM, "out of memory");
	}
	return 0;
}

int wl_create(wl **out, const struct wl_config *cfg, char *err, size_t err_len)
{
	const struct wl_params *p = &cfg->params;
	*out = NULL;
	if (p->threads < 1 || p->threads > WL_MAX_THREADS)
		return cli_fail(err, err_len, -EINVAL, "threads must be 1..%u", WL_MAX_THREADS);
	if (!wl_pattern_name(p->pattern))
		return cli_fail(err, err_len, -EINVAL, "unknown pattern %d", p->pattern);
	if (p->npages > (SIZE_MAX - HUGE_ALIGN) / WL_PAGE || p->npages >= (1ull << 40))
		return cli_fail(err, err_len, -EINVAL, "memory size too large");
	if (wl_domain(p) < p->threads)
		return cli_fail(err, err_len, -EINVAL, "%llu pages are too few for %u writer threads",
		                (unsigned long long)p->npages, p->threads);
	struct wl *w = calloc(1, sizeof(*w));
	if (!w)
		return cli_fail(err, err_len, -ENOMEM, "out of memory");
	w->cfg = *cfg;
	w->domain = wl_domain(p);
	w->len = p->npages * WL_PAGE;
	int rc = map_region(w, err, err_len);
	if (rc == 0)
		rc = make_threads(w, err, err_len);
	if (rc < 0) {
		wl_destroy(w);
		return rc;
	}
	*out = w;
	return 0;
}

void wl_destroy(wl *w)
{
	if (!w)
		return;
	wl_stop(w);
	if (w->th)
		for (unsigned t = 0; t < w->cfg.params.threads; t++) {
			free(w->th[t].mark);
			free(w->th[t].samples);
		}
	free(w->th);
	if (w->mem)
		munmap(w->mem, w->len);
	free(w);
}

void *wl_mem(const wl *w) { return w->mem; }
size_t wl_mem_bytes(const wl *w) { return w->len; }
const struct wl_params *wl_get_params(const wl *w) { return &w->cfg.params; }

/* Parks until the control word changes from `c` (the value that asked for
 * the pause): a resume bumps its generation, so a writer that oversleeps a
 * resume and meets the next pause re-parks and is counted for it. */
static void park(struct wl *w, struct wl_thread *th, uint64_t k, uint32_t c)
{
	th->paused_at = k;
	uint32_t n = atomic_fetch_add_explicit(&w->parked, 1, memory_order_acq_rel) + 1;
	if (n == w->cfg.params.threads)
		futex_wake(&w->parked, 1);
	while (atomic_load_explicit(&w->ctl, memory_order_acquire) == c)
		futex_wait(&w->ctl, c);
}

static void *writer_main(void *arg)
{
	struct wl_thread *th = arg;
	struct wl *w = th->w;
	const unsigned nthr = w->cfg.params.threads;
	const unsigned t = th->t;
	uint64_t k = th->next_step;
	atomic_store(&th->ktid, (pid_t)syscall(SYS_gettid));
	struct pick ps;
	pick_init(&ps, &w->cfg.params, w->domain, t, k);

	/* Rewrite each owned page's first word with its own value: content
	 * unchanged, but on these VMs the first write to a page after it was
	 * filled costs microseconds of hypervisor work; pay it here, in order,
	 * rather than inside the measurements. */
	if (w->touch_this_start)
		for (uint64_t j = 0; j < th->n; j++) {
			uint64_t *pg = (uint64_t *)(void *)(w->mem + (t + j * nthr) * WL_PAGE);
			page_store(pg, page_load(pg));
		}

	for (;;) {
		uint32_t c = atomic_load_explicit(&w->ctl, memory_order_acquire);
		if (c & (CTL_PAUSE | CTL_STOP)) {
			if (c & CTL_STOP)
				break;
			if (c & CTL_PAUSE)
				park(w, th, k, c);
			continue;
		}
		uint64_t j = pick_next(&ps, k);
		uint64_t page = t + j * nthr;
		uint64_t *pg = (uint64_t *)(void *)(w->mem + page * WL_PAGE);
		uint64_t v = write_word0(k, t);
		uint64_t v2 = v ^ page_mix(page);
		uint32_t e = atomic_load_explicit(&w->timing_epoch, memory_order_relaxed);
		if (e && th->mark[j] != e) {
			th->mark[j] = e;
			uint64_t t0 = mono_ns();
			page_store(&pg[0], v);
			uint64_t t1 = mono_ns();
			page_store(&pg[WORDS - 1], v2);
			uint64_t d = t1 - t0;
			if (th->nsamples < th->n)
				th->samples[th->nsamples++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
		} else {
			page_store(&pg[0], v);
			page_store(&pg[WORDS - 1], v2);
		}
		k++;
		atomic_store_explicit(&th->steps, k, memory_order_relaxed);
	}
	th->next_step = k;
	return NULL;
}

int wl_start(wl *w, char *err, size_t err_len)
{
	if (w->running)
		return 0;
	atomic_store(&w->ctl, 0);
	atomic_store(&w->parked, 0);
	w->touch_this_start = w->touch_next_start;
	w->touch_next_start = false;
	for (unsigned t = 0; t < w->cfg.params.threads; t++) {
		struct wl_thread *th = &w->th[t];
		atomic_store(&th->steps, th->next_step);
		int r = pthread_create(&th->tid, NULL, writer_main, th);
		if (r) {
			cli_fail(err, err_len, 0, "pthread_create: %s", strerror(r));
			atomic_store(&w->ctl, CTL_STOP);
			for (unsigned u = 0; u < t; u++)
				pthread_join(w->th[u].tid, NULL);
			return -r;
		}
	}
	w->running = true;
	return 0;
}

void wl_stop(wl *w)
{
	if (!w->running)
		return;
	uint32_t c = atomic_load_explicit(&w->ctl, memory_order_relaxed);
	atomic_store_explicit(&w->ctl, (c + CTL_GEN) | CTL_STOP, memory_order_release);
	futex_wake(&w->ctl, INT_MAX);
	for (unsigned t = 0; t < w->cfg.params.threads; t++)
		pthread_join(w->th[t].tid, NULL);
	w->running = false;
	atomic_store(&w->ctl, 0);
	atomic_store(&w->parked, 0);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

void wl_settle(wl *w)
{
	if (w->running)
		return;
	/* A snapshot that unprotected parts of huge pages split them; rebuild
	 * them so every method starts from huge pages. */
	if (w->cfg.memory == WL_MEM_THP)
		madvise(w->mem, w->len, MADV_COLLAPSE);
	madvise(w->mem, w->domain * WL_PAGE, MADV_POPULATE_WRITE);
	w->touch_next_start = true;
}

uint64_t wl_total_steps(const wl *w)
{
	uint64_t s = 0;
	for (unsigned t = 0; t < w->cfg.params.threads; t++)
		s += atomic_load_explicit(&w->th[t].steps, memory_order_relaxed);
	return s;
}

int wl_wait_progress(wl *w, unsigned timeout_ms)
{
	uint64_t start[WL_MAX_THREADS];
	for (unsigned t = 0; t < w->cfg.params.threads; t++)
		start[t] = atomic_load_explicit(&w->th[t].steps, memory_order_relaxed);
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		unsigned t;
		for (t = 0; t < w->cfg.params.threads; t++)
			if (atomic_load_explicit(&w->th[t].steps, memory_order_relaxed) == start[t])
				break;
		if (t == w->cfg.params.threads)
			return 0;
		if (mono_ns() > deadline)
			return -ETIMEDOUT;
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
}

void wl_pause(wl *w)
{
	const uint32_t n = w->cfg.params.threads;
	atomic_fetch_or_explicit(&w->ctl, CTL_PAUSE, memory_order_acq_rel);
	/* A running writer sees the flag within one step.  One that is runnable
	 * but waiting for a CPU (N writers and this thread on fewer cores) gets
	 * ours at once through sched_yield; sleep on the count only after that. */
	for (unsigned i = 0; i < 64; i++) {
		for (unsigned j = 0; j < 32; j++) {
			if (atomic_load_explicit(&w->parked, memory_order_acquire) == n)
				goto parked;
			cpu_relax();
		}
		sched_yield();
	}
	uint32_t v;
	while ((v = atomic_load_explicit(&w->parked, memory_order_acquire)) < n)
		futex_wait(&w->parked, v);
parked:
	for (unsigned t = 0; t < n; t++)
		w->paused[t] = w->th[t].paused_at;
}

void wl_resume(wl *w, bool arm_timing)
{
	if (arm_timing) {
		for (unsigned t = 0; t < w->cfg.params.threads; t++)
			w->th[t].nsamples = 0;
		if (++w->epoch == 0)
			++w->epoch;
		atomic_store_explicit(&w->timing_epoch, w->epoch, memory_order_relaxed);
	}
	atomic_store_explicit(&w->parked, 0, memory_order_relaxed);
	uint32_t c = atomic_load_explicit(&w->ctl, memory_order_relaxed);
	atomic_store_explicit(&w->ctl, (c + CTL_GEN) & ~(uint32_t)CTL_PAUSE, memory_order_release);
	futex_wake(&w->ctl, INT_MAX);
}

void wl_timing_off(wl *w)
{
	atomic_store_explicit(&w->timing_epoch, 0, memory_order_relaxed);
}

const uint64_t *wl_paused_steps(const wl *w) { return w->paused; }

pid_t wl_thread_tid(const wl *w, unsigned t)
{
	return atomic_load(&w->th[t].ktid);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile: the 1-based rank of the p-th percentile of n. */
static uint64_t rank(uint64_t n, unsigned p)
{
	return (n * p + 99) / 100;
}

int wl_first_write_latency(const wl *w, struct wl_latency *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t n = 0;
	for (unsigned t = 0; t < w->cfg.params.threads; t++)
		n += w->th[t].nsamples;
	if (!n)
		return 0;
	uint32_t *all = malloc(n * sizeof(*all));
	if (!all)
		return -ENOMEM;
	uint64_t i = 0;
	for (unsigned t = 0; t < w->cfg.params.threads; t++) {
		memcpy(all + i, w->th[t].samples, w->th[t].nsamples * sizeof(*all));
		i += w->th[t].nsamples;
	}
	qsort(all, n, sizeof(*all), cmp_u32);
	out->samples = n;
	out->p50_us = all[rank(n, 50) - 1] / 1000.0;
	out->p99_us = all[rank(n, 99) - 1] / 1000.0;
	out->max_us = all[n - 1] / 1000.0;
	uint64_t fast = 0;
	while (fast < n && all[fast] < WL_TRAP_NS)
		fast++;
	out->traps = n - fast;
	if (out->traps) {
		out->trap_p50_us = all[fast + rank(out->traps, 50) - 1] / 1000.0;
		out->trap_p99_us = all[fast + rank(out->traps, 99) - 1] / 1000.0;
	}
	free(all);
	return 0;
}
