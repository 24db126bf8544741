/*
 * method_uffd.c - the userfaultfd methods.
 *
 * uffd (the default): regions are registered for write-protect faults; a
 * handler thread reads fault messages in batches and hands each page to
 * track_fault() (claim, copy into the copy buffer, unprotect + wake).  A
 * kernel access to a protected page (read(2) into it, a KVM vCPU) is
 * resolved the same way, so the host needs no care at all.
 *
 * uffd-signal: the same registration with UFFD_FEATURE_SIGBUS: the
 * faulting thread gets SIGBUS and saves the page itself, with no round trip
 * through another thread.  Caveat: a kernel access to a protected page
 * fails with EFAULT instead of waiting (a read(2) into a region returns
 * -1/EFAULT while the snapshot runs), so this mode is opt-in.
 *
 * In both, the handler thread also watches for UFFD_EVENT_REMOVE / UNMAP /
 * REMAP: pages discarded before they were saved fail the run (never stored
 * as zeros silently).  The write-protect step runs in the pause; the writer
 * and the page ownership rules are in track.c.
 */
#include "engine/engine.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/fault_signal.h"
#include "engine/track.h"
#include "os/uffd_loop.h"
#include "os/uffd_sys.h"
#include "util/clock.h"
#include "util/thread.h"

#define EAGAIN_RETRIES 20000      /* x 50 us: up to a second of mm changes */

/* Helpers that write-protect a share of the memory in the pause.  They are
 * started before the pause, so the pause pays only a wake-up. */
struct wp_pool {
	pthread_mutex_t lock;
	pthread_cond_t go, finished;
	unsigned nthreads;          /* helpers, not counting the pausing thread */
	pthread_t threads[15];
	unsigned generation;        /* bumped to start a round (or exit) */
	unsigned running;
	int quit;
	int error;                  /* first -errno of the round */
};

struct uffd_priv {
	struct wp_pool pool;
	int pool_started;
	int signal_mode;
	int fd;
	uint64_t features;
	int *registered;
	struct uffd_loop handler;     /* reads the fault and event messages */
	int signal_installed;
	/* handler-only: unprotects that met EAGAIN, retried after the next read */
	uint64_t pending[1024];
	size_t npending;
};

static int pool_start(struct track *t);
static void pool_stop(struct uffd_priv *p);
static int pre_protect(struct track *t);

#define WANT_FEATURES (UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE | \
                       UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP | \
                       UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | \
                       UFFD_FEATURE_THREAD_ID)

static int probe_common(uint64_t need, struct bgsnap_err *err)
{
	uint64_t have;
	int r = uffd_kernel_features(&have, err);
	if (r)
		return r;
	if (!(have & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		return err_set(err, -ENOTSUP, "this kernel lacks UFFD_FEATURE_PAGEFAULT_FLAG_WP "
		               "(userfaultfd write-protect faults, Linux 5.7+)");
	if ((have & need) != need)
		return err_set(err, -ENOTSUP, "this kernel lacks UFFD_FEATURE_SIGBUS");
	return 0;
}

static int uffd_probe(struct bgsnap_err *err)
{
	return probe_common(UFFD_FEATURE_PAGEFAULT_FLAG_WP, err);
}

static int uffd_signal_probe(struct bgsnap_err *err)
{
	return probe_common(UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_SIGBUS, err);
}

/* track.unprotect: async-signal-safe (an ioctl and nanosleep). */
static int uffd_unprotect(struct track *t, uint64_t addr, uint64_t len)
{
	struct uffd_priv *p = t->method;
	return uffd_wp(p->fd, addr, len, 0, 0, EAGAIN_RETRIES);
}

/* The handler thread must not wait on EAGAIN: the pending event that causes
 * it is one the handler itself has to read.  Queues the page (bit 0 of the
 * entry marks a pre-phase fault) and returns 1.  In signal mode the
 * faulting thread itself waits. */
static int uffd_unprotect_fault(struct track *t, uint64_t addr, uint64_t len, int prephase)
{
	struct uffd_priv *p = t->method;
	if (p->signal_mode)
		return uffd_unprotect(t, addr, len);
	int r = uffd_wp(p->fd, addr, len, 0, 0, 0);
	if (r == -EAGAIN && p->npending < sizeof(p->pending) / sizeof(p->pending[0])) {
		p->pending[p->npending++] = addr | (prephase ? 1 : 0);
		return 1;
	}
	return r;
}

static void unregister_all(struct bgsnap_engine *e, struct uffd_priv *p)
{
	for (uint32_t i = 0; i < e->region_count; i++) {
		if (!p->registered || !p->registered[i])
			continue;
		struct uffdio_range rg = { .start = (uint64_t)(uintptr_t)e->regions[i].addr,
		                           .len = e->regions[i].len };
		/* May fail if the host unmapped the region against the contract;
		 * closing the fd then drops what is left. */
		ioctl(p->fd, UFFDIO_UNREGISTER, &rg);
		p->registered[i] = 0;
	}
}

static void wake_page(struct uffd_priv *p, uint64_t addr)
{
	struct uffdio_range rg = { .start = addr & ~(uint64_t)(PAGE_SIZE_ - 1), .len = PAGE_SIZE_ };
	ioctl(p->fd, UFFDIO_WAKE, &rg);
}

static void retry_pending(struct track *t)
{
	struct uffd_priv *p = t->method;
	size_t n = p->npending;
	uint64_t again[sizeof(p->pending) / sizeof(p->pending[0])];
	memcpy(again, p->pending, n * sizeof(again[0]));
	p->npending = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t addr = again[i] & ~(uint64_t)1;
		int pre = (int)(again[i] & 1);
		uint64_t len = track_unit_bytes(t, addr);
		int r = uffd_unprotect_fault(t, addr, len, pre);
		if (pre && r == 0)
			track_prephase_unprotected(t, addr, len);
		if (r < 0)
			engine_fail(t->e, r, "cannot remove write protection at 0x%" PRIx64 ": %s", addr, strerror(-r));
		if (pre && r < 0)
			track_prephase_give_up(t, addr);
		if (pre && r != 1)
			track_prephase_leave(t);
	}
}

/* The uffd_loop callbacks; ctx is the track. */

/* The whole batch is read and handled under one pre-phase ticket: the
 * kernel lets a thread blocked on an event go as soon as the event is
 * read (track.h, track_prephase_enter). */
static int loop_batch_begin(void *ctx)
{
	return track_prephase_enter(ctx);
}

static void loop_fault(void *ctx, uint64_t addr, uint64_t flags, int pre)
{
	struct track *t = ctx;
	struct uffd_priv *p = t->method;
	if (!(flags & UFFD_PAGEFAULT_FLAG_WP)) {
		wake_page(p, addr);      /* not registered for missing faults */
		return;
	}
	enum track_fault_result r = track_fault(t, addr, pre ? TRACK_FAULT_HANDLER_PRE : TRACK_FAULT_HANDLER);
	if (r != TRACK_NOT_OURS && !pre) {
		uint64_t now = now_ns(), t0 = p->handler.arrival_ns;
		track_host_wait(t, now > t0 ? now - t0 : 0, p->handler.ptid);
	}
	switch (r) {
	case TRACK_NOT_OURS:
		wake_page(p, addr);
		break;
	case TRACK_ALREADY_DONE:      /* track_fault unprotected it, which wakes */
		break;
	case TRACK_FAILED:
		engine_fail(t->e, atomic_load(&t->fault_error) ? atomic_load(&t->fault_error) : -EIO,
		            "cannot remove write protection at 0x%" PRIx64, addr);
		break;
	case TRACK_SAVED:
	case TRACK_OWNED_ELSEWHERE:   /* the owner's unprotect wakes it */
		break;
	}
}

/* Memory discarded or moved before the pause is not a loss (the snapshot
 * instant has not come), but the protection there may be gone: the pause
 * then protects everything. */
static void loop_discard(void *ctx, uint64_t lo, uint64_t hi, const char *what, int pre)
{
	struct track *t = ctx;
	if (pre && t->keep)
		track_kept_discard(t, lo, hi, strcmp(what, "MADV_DONTNEED/MADV_REMOVE") != 0);
	else if (pre)
		atomic_store(&t->pre_spoiled, 1);
	else
		track_discard(t, lo, hi, what);
}

static void loop_batch_end(void *ctx, int pre, size_t n)
{
	if (pre)
		track_prephase_leave(ctx);
	if (n > 0)
		retry_pending(ctx);
}

/* Unprotects that met EAGAIN are retried every millisecond until they pass. */
static int loop_idle(void *ctx)
{
	struct track *t = ctx;
	struct uffd_priv *p = t->method;
	if (p->npending)
		retry_pending(t);
	return p->npending ? 1 : -1;
}

static void loop_failed(void *ctx, int code, const char *what)
{
	struct track *t = ctx;
	engine_fail(t->e, code, "%s failed: %s", what, strerror(-code));
	copybuf_close(&t->cb);
}

static const struct uffd_loop_ops loop_ops = {
	.batch_begin = loop_batch_begin,
	.fault = loop_fault,
	.discard = loop_discard,
	.batch_end = loop_batch_end,
	.idle = loop_idle,
	.failed = loop_failed,
};

/* Run by the writer thread at the end, protection already gone. */
static void uffd_writer_end(struct track *t)
{
	struct uffd_priv *p = t->method;
	if (p->signal_installed) {
		fault_signal_remove(SIGBUS, t);
		p->signal_installed = 0;
	}
	uffd_loop_stop(&p->handler);
	unregister_all(t->e, p);
}

/* Registers every region for write-protect faults. */
static int register_all(struct bgsnap_engine *e, struct uffd_priv *p)
{
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uint64_t)(uintptr_t)e->regions[i].addr, .len = e->regions[i].len },
			.mode = UFFDIO_REGISTER_MODE_WP,
		};
		if (ioctl(p->fd, UFFDIO_REGISTER, &reg) < 0) {
			int er = -errno;
			const char *hint = "";
			if (er == -EINVAL && !(p->features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM))
				hint = " (shmem/memfd and hugetlbfs need UFFD_FEATURE_WP_HUGETLBFS_SHMEM, Linux 5.19+)";
			else if (er == -EINVAL)
				hint = " (file-backed mappings cannot be write-protected)";
			else if (er == -EBUSY)
				hint = " (the range is registered with another userfaultfd)";
			return err_sys(&e->err, er, "cannot register region '%s' for write-protect%s",
			               e->regions[i].name, hint);
		}
		p->registered[i] = 1;
		if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT)))
			return err_set(&e->err, -ENOTSUP, "region '%s' cannot be write-protected by this kernel",
			               e->regions[i].name);
	}
	return 0;
}

static int uffd_prepare(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct uffd_priv *p = t->method;
	int signal_mode = e->ops->method == BGSNAP_METHOD_UFFD_SIGNAL;
	p->fd = -1;
	p->handler.stop_fd = -1;
	p->signal_mode = signal_mode;
	p->registered = calloc(e->region_count, sizeof(int));
	if (!p->registered)
		return err_set(&e->err, -ENOMEM, "out of memory");

	uint64_t want = WANT_FEATURES | (signal_mode ? UFFD_FEATURE_SIGBUS : 0);
	uint64_t need = UFFD_FEATURE_PAGEFAULT_FLAG_WP | (signal_mode ? UFFD_FEATURE_SIGBUS : 0);
	int fd = uffd_open(want, need, &p->features, &e->err);
	if (fd < 0)
		return fd;
	p->fd = fd;
	atomic_store(&e->live->uffd_features, p->features);
	int r = register_all(e, p);
	if (r)
		return r;
	/* Without WP_UNPOPULATED a never-touched page is not protected, and a
	 * first write to it would go unseen: populate before the pause. */
	if (!(p->features & UFFD_FEATURE_WP_UNPOPULATED)) {
		engine_log(e, BGSNAP_LOG_INFO, "kernel lacks UFFD_FEATURE_WP_UNPOPULATED: populating regions");
		for (uint32_t i = 0; i < e->region_count; i++) {
			if (madvise(e->regions[i].addr, e->regions[i].len, MADV_POPULATE_READ) == 0)
				continue;
			volatile const uint8_t *m = e->regions[i].addr;
			for (uint64_t off = 0; off < e->regions[i].len; off += PAGE_SIZE_)
				(void)m[off];
		}
	}
	r = uffd_loop_init(&p->handler, fd, &loop_ops, t);
	if (r)
		return err_sys(&e->err, r, "eventfd");
	r = uffd_loop_start(&p->handler, "bgsnap-fault");
	if (r)
		return err_sys(&e->err, r, "cannot start the fault handler thread");
	r = pool_start(t);
	if (r)
		return r;
	if (signal_mode) {
		r = fault_signal_install(SIGBUS, t, &e->err);
		if (r)
			return r;
		p->signal_installed = 1;
	}
	return pre_protect(t);
}

/*
 * Write-protects everything before the pause, while the host runs; its
 * faults meanwhile only remove the protection again and mark the page
 * dirty (track_fault's pre-phase), and the pause protects just those pages
 * (track_protect_in_pause; docs/ARCHITECTURE.md says why nothing is lost).
 * Without the remove/unmap/remap events a discarded range would go unseen,
 * and without WP_UNPOPULATED it could not be protected again: those
 * kernels keep the whole write-protect in the pause.
 */
static int protect_all(struct track *t);

static int protect_range(struct track *t, uint64_t addr, uint64_t len)
{
	struct uffd_priv *p = t->method;
	return uffd_wp(p->fd, addr, len, 1, 0, EAGAIN_RETRIES);
}

static int pre_protect(struct track *t)
{
	struct uffd_priv *p = t->method;
	/* Without WP_UNPOPULATED the pause could not protect a range the host
	 * dropped in the pre-phase (empty entries; prepare populated before). */
	const uint64_t need = UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP |
	                      UFFD_FEATURE_WP_UNPOPULATED;
	if (!t->e->opts.pre_protect || (p->features & need) != need)
		return 0;
	return track_pre_protect(t);
}

/* Write-protects share `k` of `n` of all regions' bytes, cut at 2 MiB
 * boundaries so that no huge page is split between two threads.  The cuts
 * are in the engine's page numbering, where a hugetlb region need not start
 * on a huge page: inside one they move up to its next huge page, the same
 * way for both threads that share the cut. */
static int protect_share(struct track *t, unsigned k, unsigned n)
{
	struct bgsnap_engine *e = t->e;
	struct uffd_priv *p = t->method;
	const uint64_t align = 512;   /* pages */
	uint64_t per = (e->pages_total + n - 1) / n;
	per = (per + align - 1) / align * align;
	uint64_t lo = per * k, hi = per * (k + 1);
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct region *rg = &e->regions[i];
		uint64_t a = rg->first_global, b = a + rg->pages, g = rg->granule_pages;
		uint64_t s = lo > a ? lo : a, end = hi < b ? hi : b;
		if (s >= end)
			continue;
		s = a + (s - a + g - 1) / g * g;
		end = a + (end - a + g - 1) / g * g;
		end = end < b ? end : b;
		if (s >= end)
			continue;
		int r = uffd_wp(p->fd, (uint64_t)(uintptr_t)(rg->addr + (s - a) * PAGE_SIZE_), (end - s) * PAGE_SIZE_,
		                1, 0, EAGAIN_RETRIES);
		if (r)
			return r;
	}
	return 0;
}

struct wp_arg {
	struct track *t;
	unsigned index;
};

static void *wp_helper(void *arg)
{
	struct track *t = ((struct wp_arg *)arg)->t;
	unsigned k = ((struct wp_arg *)arg)->index;
	free(arg);
	struct uffd_priv *p = t->method;
	struct wp_pool *pl = &p->pool;
	unsigned seen = 0;
	for (;;) {
		pthread_mutex_lock(&pl->lock);
		while (pl->generation == seen && !pl->quit)
			pthread_cond_wait(&pl->go, &pl->lock);
		if (pl->quit) {
			pthread_mutex_unlock(&pl->lock);
			return NULL;
		}
		seen = pl->generation;
		pthread_mutex_unlock(&pl->lock);
		int r = protect_share(t, k, pl->nthreads + 1);
		pthread_mutex_lock(&pl->lock);
		if (r && !pl->error)
			pl->error = r;
		if (--pl->running == 0)
			pthread_cond_signal(&pl->finished);
		pthread_mutex_unlock(&pl->lock);
	}
}

static void pool_stop(struct uffd_priv *p)
{
	if (!p->pool_started)
		return;
	struct wp_pool *pl = &p->pool;
	pthread_mutex_lock(&pl->lock);
	pl->quit = 1;
	pthread_cond_broadcast(&pl->go);
	pthread_mutex_unlock(&pl->lock);
	for (unsigned i = 0; i < pl->nthreads; i++)
		pthread_join(pl->threads[i], NULL);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->go);
	pthread_cond_destroy(&pl->finished);
	p->pool_started = 0;
}

/* How many threads protect.  Measured on 2-CPU guests, 2 GiB with the
 * host's writer thread parked (bench --wp-threads, five alternating runs):
 * one thread 66.5-69.8 ms (median 67.9), two 45.7-84.7 ms (median 49.8).
 * With no other thread in the process at all two were no faster
 * (137-169 vs 136-143 ms).  Below 256 MiB the wake-up costs more than it
 * saves. */
static unsigned wp_threads_for(struct bgsnap_engine *e)
{
	unsigned n = e->opts.wp_threads;
	if (n == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = e->pages_total * PAGE_SIZE_ < (256ull << 20) ? 1 : (unsigned)(cpus > 4 ? 4 : cpus < 1 ? 1 : cpus);
	}
	return n > 16 ? 16 : n;
}

static int pool_start(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct uffd_priv *p = t->method;
	unsigned n = wp_threads_for(e);
	if (n <= 1)
		return 0;
	struct wp_pool *pl = &p->pool;
	memset(pl, 0, sizeof(*pl));
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->go, NULL);
	pthread_cond_init(&pl->finished, NULL);
	p->pool_started = 1;
	for (unsigned i = 0; i < n - 1; i++) {
		struct wp_arg *a = malloc(sizeof(*a));
		if (!a)
			return err_set(&e->err, -ENOMEM, "out of memory");
		a->t = t;
		a->index = i + 1;
		int r = thread_start(&pl->threads[i], "bgsnap-wp", wp_helper, a);
		if (r) {
			free(a);
			return err_sys(&e->err, r, "cannot start a write-protect thread");
		}
		pl->nthreads++;
	}
	return 0;
}

/* The whole regions, split over the pool's threads.  Returns 0 or -errno. */
static int protect_all(struct track *t)
{
	struct uffd_priv *p = t->method;
	struct bgsnap_engine *e = t->e;
	struct wp_pool *pl = &p->pool;
	/* A range emptied before the pause (MADV_DONTNEED) cannot be protected
	 * without WP_UNPOPULATED: fill it again (zero pages) first.  No touch
	 * loop here: the range may be unmapped, and then the run must fail. */
	if (!(p->features & UFFD_FEATURE_WP_UNPOPULATED) && atomic_load(&t->pre_spoiled)) {
		for (uint32_t i = 0; i < e->region_count; i++)
			if (madvise(e->regions[i].addr, e->regions[i].len, MADV_POPULATE_READ) != 0)
				return errno == ENOMEM ? -EFAULT : -errno;   /* ENOMEM: not mapped */
	}
	if (!p->pool_started || pl->nthreads == 0)
		return protect_share(t, 0, 1);
	pthread_mutex_lock(&pl->lock);
	pl->running = pl->nthreads;
	pl->error = 0;
	pl->generation++;
	pthread_cond_broadcast(&pl->go);
	pthread_mutex_unlock(&pl->lock);
	int r = protect_share(t, 0, pl->nthreads + 1);
	pthread_mutex_lock(&pl->lock);
	while (pl->running)
		pthread_cond_wait(&pl->finished, &pl->lock);
	if (!r)
		r = pl->error;
	pthread_mutex_unlock(&pl->lock);
	return r;
}

/* A kept track's writer leaves saved pages protected: it wakes the
 * threads waiting on them instead, which fault again.  In signal mode the
 * faulting thread waits by itself. */
static int uffd_wake(struct track *t, uint64_t addr, uint64_t len)
{
	struct uffd_priv *p = t->method;
	if (p->signal_mode)
		return 0;
	struct uffdio_range rg = { .start = addr, .len = len };
	return ioctl(p->fd, UFFDIO_WAKE, &rg) < 0 ? -errno : 0;
}

/* A kept track's next run: the pause's helpers again. */
static int uffd_resume(struct track *t)
{
	return pool_start(t);
}

/* The helpers served the pause only. */
static void uffd_after_pause(struct track *t)
{
	pool_stop(t->method);
}

static void uffd_release(struct track *t)
{
	struct uffd_priv *p = t->method;
	pool_stop(p);
	uffd_loop_destroy(&p->handler);
	if (p->fd >= 0)
		close(p->fd);
	free(p->registered);
}

static const struct track_method uffd_track = {
	.priv_size = sizeof(struct uffd_priv),
	.prepare = uffd_prepare,
	.protect_all = protect_all,
	.protect_range = protect_range,
	.unprotect = uffd_unprotect,
	.unprotect_fault = uffd_unprotect_fault,
	.after_pause = uffd_after_pause,
	.writer_end = uffd_writer_end,
	.release = uffd_release,
	.wake = uffd_wake,
	.resume = uffd_resume,
};

const struct method_ops method_uffd_ops = {
	.method = BGSNAP_METHOD_UFFD,
	.probe = uffd_probe,
	.track = &uffd_track,
	TRACK_LIFE_CYCLE,
};

/* The same, with the faults taken in the faulting thread (uffd_prepare
 * looks at the method). */
const struct method_ops method_uffd_signal_ops = {
	.method = BGSNAP_METHOD_UFFD_SIGNAL,
	.probe = uffd_signal_probe,
	.track = &uffd_track,
	TRACK_LIFE_CYCLE,
};
