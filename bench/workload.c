/*
 * workload.c - writer threads over one anonymous region, the pause/resume
 * handshake, first-write timing, and the replay oracle (see workload.h for
 * the content model).
 *
 * Invariants:
 *  - the writers and the oracle pick pages with the same code (struct pick),
 *    so the oracle's replay is exact by construction;
 *  - a writer checks the control word once per step, before it picks; when it
 *    parks, the steps it recorded are exactly the writes it has completed;
 *  - step counts only grow while the region lives (wl_start continues them).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "format/le.h"
#include "workload.h"

#define GOLD 0x9e3779b97f4a7c15ull
#define WTAG 0xB5ull            /* top byte of a written first word */
#define WORDS (WL_PAGE / 8u)
#define HUGE_ALIGN (2u << 20)

/* The control word: flags, and above them a generation bumped by every
 * resume.  Only the driving thread writes it. */
enum { CTL_PAUSE = 1u, CTL_STOP = 2u, CTL_GEN = 4u };

static inline uint64_t mix64(uint64_t z)
{
	z ^= z >> 30;
	z *= 0xbf58476d1ce4e5b9ull;
	z ^= z >> 27;
	z *= 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z;
}

/* Lemire's multiply-shift: uniform enough, and no division per step. */
static inline uint64_t reduce(uint64_t r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

static inline uint64_t page_mix(uint64_t page)
{
	return mix64(page * GOLD + 0x5bd1e995u) | 1u;
}

static inline uint64_t init_word(uint64_t mix, unsigned i)
{
	return mix + (uint64_t)(i + 1) * GOLD;
}

static inline uint64_t write_word0(uint64_t k, unsigned t)
{
	return WTAG << 56 | ((k + 1) & ((1ull << 48) - 1)) << 8 | (t & 0xffu);
}

static int64_t decode_step(uint64_t w0)
{
	if (w0 >> 56 != WTAG)
		return -1;
	return (int64_t)((w0 >> 8) & ((1ull << 48) - 1)) - 1;
}

const char *wl_pattern_name(int pattern)
{
	static const char *const names[] = { "seq", "random", "hot" };
	return pattern >= 0 && pattern < 3 ? names[pattern] : NULL;
}

int wl_pattern_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, wl_pattern_name(i)))
			return i;
	return -1;
}

uint64_t wl_domain(const struct wl_params *p)
{
	return p->npages < 16 ? p->npages : p->npages - p->npages / 16;
}

/* Every 8th page, and runs of 16 pages every 64, start zero. */
bool wl_page_init_zero(uint64_t page)
{
	return page % 8 == 7 || (page >> 4) % 4 == 3;
}

static uint64_t owned_pages(const struct wl_params *p, uint64_t domain, unsigned t)
{
	return t < domain ? (domain - 1 - t) / p->threads + 1 : 0;
}

/* One thread's page picks; writers and the oracle both step through this. */
struct pick {
	int pattern;
	uint64_t n, hot, base, j;
};

static void pick_init(struct pick *ps, const struct wl_params *p, uint64_t domain, unsigned t,
                      uint64_t k0)
{
	ps->pattern = p->pattern;
	ps->n = owned_pages(p, domain, t);
	ps->hot = ps->n / 32 ? ps->n / 32 : 1;
	ps->base = mix64(p->seed ^ ((uint64_t)(t + 1) * 0xd1b54a32d192ed03ull));
	ps->j = ps->n ? k0 % ps->n : 0;
}

/* Local index (0..n-1) of the page thread t writes at step k; k must advance
 * by one between calls (seq keeps a cursor). */
static inline uint64_t pick_next(struct pick *ps, uint64_t k)
{
	uint64_t r;
	switch (ps->pattern) {
	case WL_SEQ: {
		uint64_t j = ps->j;
		if (++ps->j == ps->n)
			ps->j = 0;
		return j;
	}
	case WL_HOT:
		r = mix64(ps->base + (k + 1) * GOLD);
		/* 230/256 ~ 90% of the steps go to the hot set */
		return reduce(r, (r & 0xffu) < 230u ? ps->hot : ps->n);
	default:
		r = mix64(ps->base + (k + 1) * GOLD);
		return reduce(r, ps->n);
	}
}

/* ------------------------------------------------------------------------ */

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

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	if (!err || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

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

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

static void fill_page(uint8_t *pg, uint64_t page)
{
	uint64_t *w = (uint64_t *)(void *)pg;
	uint64_t m = page_mix(page);
	for (unsigned i = 0; i < WORDS; i++)
		w[i] = init_word(m, i);
}

int wl_create(wl **out, const struct wl_config *cfg, char *err, size_t err_len)
{
	const struct wl_params *p = &cfg->params;
	*out = NULL;
	if (p->threads < 1 || p->threads > WL_MAX_THREADS) {
		set_err(err, err_len, "threads must be 1..%u", WL_MAX_THREADS);
		return -EINVAL;
	}
	if (!wl_pattern_name(p->pattern)) {
		set_err(err, err_len, "unknown pattern %d", p->pattern);
		return -EINVAL;
	}
	if (p->npages > (SIZE_MAX - HUGE_ALIGN) / WL_PAGE || p->npages >= (1ull << 40)) {
		set_err(err, err_len, "memory size too large");
		return -EINVAL;
	}
	struct wl *w = calloc(1, sizeof(*w));
	if (!w) {
		set_err(err, err_len, "out of memory");
		return -ENOMEM;
	}
	w->cfg = *cfg;
	w->domain = wl_domain(p);
	w->len = p->npages * WL_PAGE;
	if (w->domain < p->threads) {
		set_err(err, err_len, "%llu pages are too few for %u writer threads",
		        (unsigned long long)p->npages, p->threads);
		free(w);
		return -EINVAL;
	}

	/* Over-map, then trim, so the region is 2 MiB aligned (THP-eligible) and
	 * is exactly one mapping. */
	size_t map_len = w->len + HUGE_ALIGN;
	uint8_t *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
	                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		int e = errno;
		set_err(err, err_len, "mmap %zu bytes: %s", map_len, strerror(e));
		free(w);
		return -e;
	}
	uintptr_t a = ((uintptr_t)map + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1);
	w->mem = (uint8_t *)a;
	if (w->mem > map)
		munmap(map, (size_t)(w->mem - map));
	size_t tail = (size_t)((map + map_len) - (w->mem + w->len));
	if (tail)
		munmap(w->mem + w->len, tail);
	if (madvise(w->mem, w->len, cfg->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
		int e = errno;
		set_err(err, err_len, "madvise(%s): %s", cfg->thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE",
		        strerror(e));
		munmap(w->mem, w->len);
		free(w);
		return -e;
	}
	for (uint64_t pg = 0; pg < p->npages; pg++)
		if (!wl_page_init_zero(pg))
			fill_page(w->mem + pg * WL_PAGE, pg);

	w->th = aligned_alloc(64, sizeof(*w->th) * p->threads);
	if (!w->th) {
		set_err(err, err_len, "out of memory");
		munmap(w->mem, w->len);
		free(w);
		return -ENOMEM;
	}
	memset(w->th, 0, sizeof(*w->th) * p->threads);
	for (unsigned t = 0; t < p->threads; t++) {
		struct wl_thread *th = &w->th[t];
		th->w = w;
		th->t = t;
		th->n = owned_pages(p, w->domain, t);
		th->mark = calloc(th->n, sizeof(*th->mark));
		th->samples = calloc(th->n, sizeof(*th->samples));
		if (!th->mark || !th->samples) {
			set_err(err, err_len, "out of memory");
			wl_destroy(w);
			return -ENOMEM;
		}
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
			uint64_t t0 = now_ns();
			page_store(&pg[0], v);
			uint64_t t1 = now_ns();
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
			set_err(err, err_len, "pthread_create: %s", strerror(r));
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
	if (w->cfg.thp)
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
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		unsigned t;
		for (t = 0; t < w->cfg.params.threads; t++)
			if (atomic_load_explicit(&w->th[t].steps, memory_order_relaxed) == start[t])
				break;
		if (t == w->cfg.params.threads)
			return 0;
		if (now_ns() > deadline)
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

/* ------------------------------------------------------------------------ */
/* State blob: "BGBO", version, threads, pattern, seed, npages, steps[].     */

#define BLOB_MAGIC 0x4f424742u   /* "BGBO" little-endian */
#define BLOB_HDR 32u

size_t wl_blob_size(unsigned threads)
{
	return BLOB_HDR + 8u * threads;
}

void wl_blob_encode(void *buf, const struct wl_params *p, const uint64_t *steps)
{
	uint8_t *b = buf;
	le32_store(b, BLOB_MAGIC);
	le32_store(b + 4, 1);
	le32_store(b + 8, p->threads);
	le32_store(b + 12, (uint32_t)p->pattern);
	le64_store(b + 16, p->seed);
	le64_store(b + 24, p->npages);
	for (unsigned t = 0; t < p->threads; t++)
		le64_store(b + BLOB_HDR + 8u * t, steps[t]);
}

int wl_blob_decode(const void *buf, size_t len, struct wl_params *p, uint64_t *steps)
{
	const uint8_t *b = buf;
	if (len < BLOB_HDR || le32_load(b) != BLOB_MAGIC || le32_load(b + 4) != 1)
		return -EBADMSG;
	p->threads = le32_load(b + 8);
	p->pattern = (int)le32_load(b + 12);
	p->seed = le64_load(b + 16);
	p->npages = le64_load(b + 24);
	if (p->threads < 1 || p->threads > WL_MAX_THREADS || !wl_pattern_name(p->pattern) ||
	    len != wl_blob_size(p->threads))
		return -EBADMSG;
	for (unsigned t = 0; t < p->threads; t++)
		steps[t] = le64_load(b + BLOB_HDR + 8u * t);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Oracle.                                                                   */

struct wl_oracle {
	struct wl_params p;
	uint64_t domain;
	uint64_t *last;                    /* per page: step+1 of last write, 0 none */
	uint64_t done[WL_MAX_THREADS];     /* steps replayed per thread           */
};

int wl_oracle_create(wl_oracle **out, const struct wl_params *p)
{
	*out = NULL;
	if (p->threads < 1 || p->threads > WL_MAX_THREADS || !wl_pattern_name(p->pattern) ||
	    wl_domain(p) < p->threads || p->npages >= (1ull << 40))
		return -EINVAL;
	struct wl_oracle *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->p = *p;
	o->domain = wl_domain(p);
	o->last = calloc(p->npages, sizeof(*o->last));
	if (!o->last) {
		free(o);
		return -ENOMEM;
	}
	*out = o;
	return 0;
}

void wl_oracle_destroy(wl_oracle *o)
{
	if (!o)
		return;
	free(o->last);
	free(o);
}

int wl_oracle_advance(wl_oracle *o, const uint64_t *steps)
{
	for (unsigned t = 0; t < o->p.threads; t++)
		if (steps[t] < o->done[t])
			return -EINVAL;
	for (unsigned t = 0; t < o->p.threads; t++) {
		struct pick ps;
		pick_init(&ps, &o->p, o->domain, t, o->done[t]);
		uint64_t *last = o->last;
		const uint64_t nthr = o->p.threads;
		for (uint64_t k = o->done[t]; k < steps[t]; k++)
			last[t + pick_next(&ps, k) * nthr] = k + 1;
		o->done[t] = steps[t];
	}
	return 0;
}

static inline uint64_t load_word(const uint8_t *d, unsigned i)
{
	uint64_t v;
	memcpy(&v, d + 8u * i, 8);
	return v;
}

static bool check(const wl_oracle *o, uint64_t page, const uint8_t *d, struct wl_mismatch *mm)
{
	uint64_t last = o->last[page];
	bool zero = wl_page_init_zero(page);
	uint64_t m = page_mix(page);
	uint64_t w0 = 0, wlast = 0;
	if (last) {
		w0 = write_word0(last - 1, (unsigned)(page % o->p.threads));
		wlast = w0 ^ m;
	}
	for (unsigned i = 0; i < WORDS; i++) {
		uint64_t exp;
		if (last && i == 0)
			exp = w0;
		else if (last && i == WORDS - 1)
			exp = wlast;
		else
			exp = zero ? 0 : init_word(m, i);
		uint64_t got = d ? load_word(d, i) : 0;
		if (got != exp) {
			if (mm) {
				uint64_t f0 = d ? load_word(d, 0) : 0;
				mm->page = page;
				mm->expected_step = (int64_t)last - 1;
				mm->found_word0 = f0;
				mm->found_step = decode_step(f0);
				mm->word = i;
			}
			return false;
		}
	}
	return true;
}

bool wl_oracle_check_page(const wl_oracle *o, uint64_t page, const void *data,
                          struct wl_mismatch *mm)
{
	if (page >= o->p.npages) {
		if (mm)
			memset(mm, 0, sizeof(*mm)), mm->page = page, mm->expected_step = -1;
		return false;
	}
	return check(o, page, data, mm);
}

bool wl_oracle_check_zero(const wl_oracle *o, uint64_t page, struct wl_mismatch *mm)
{
	if (page >= o->p.npages) {
		if (mm)
			memset(mm, 0, sizeof(*mm)), mm->page = page, mm->expected_step = -1;
		return false;
	}
	return check(o, page, NULL, mm);
}
