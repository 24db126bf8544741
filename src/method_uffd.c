/*
 * method_uffd.c - the default method: userfaultfd write-protect, write
 * faults taken by a handler thread, a background writer sweeping the rest.
 *
 * Who saves a page is decided by one atomic bit per page, `claimed`; a
 * second bit, `done`, says its pause-instant content is safe (written to the
 * sink, or copied into the copy buffer).  Protection is removed from a page
 * only when its `done` bit is set.
 *
 *            pause
 *   [clean] -------> [protected] --writer claims--> [writer owns] --written--> [done] --unprotect--> [free]
 *                         |                                                      ^
 *                         +--write fault: handler claims, copies to buffer ------+ (unprotect + wake)
 *
 * A fault on a page the writer owns is not answered: the writer's unprotect
 * of that run wakes the faulting thread (UFFDIO_WRITEPROTECT without
 * DONTWAKE wakes every waiter in the range).  A fault on a page that is
 * already done (a message that raced with the unprotect) is answered with
 * UFFDIO_WAKE.
 *
 * The writer sweeps in batches of SWEEP_PAGES: it claims a batch with one
 * fetch_or per 64 pages, writes the pages it won as long runs straight from
 * the (still protected, hence stable) memory, and removes protection with
 * one ioctl per contiguous run: system calls per page are what make a
 * background snapshot slow on a virtual machine.  Before each batch it
 * drains the fault copies, so the copy buffer empties as fast as it fills.
 *
 * Any failure or cancel: protection is removed from every region (waking
 * every blocked thread), the copy buffer is closed (waking the handler),
 * the handler is stopped, the regions are unregistered and the fd closed.
 */
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "copybuf.h"
#include "uffd_sys.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define SWEEP_PAGES 512u          /* 2 MiB: one huge page, 8 bitmap words */
#define DRAIN_MAX 256u
#define EAGAIN_RETRIES 20000      /* x 50 us: up to a second of mm changes */

struct uffd_region {
	_Atomic uint64_t *claimed;
	_Atomic uint64_t *done;
	uint64_t words;
	int registered;
};

struct uffd_priv {
	int fd;
	int stop_fd;                  /* eventfd: tells the handler to exit */
	uint64_t features;
	struct uffd_region *regions;
	struct copybuf cb;
	int cb_ready;
	pthread_t handler, writer;
	int handler_started, writer_started;
	int writer_rc;
	/* handler-only: unprotects that met EAGAIN, retried after the next read */
	uint64_t *pending;
	size_t npending, pending_cap;
};

#define WANT_FEATURES (UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE | \
                       UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP | \
                       UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

static int uffd_probe(struct bgsnap_err *err)
{
	uint64_t have;
	int r = uffd_kernel_features(&have, err);
	if (r)
		return r;
	if (!(have & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		return err_set(err, -ENOTSUP, "this kernel lacks UFFD_FEATURE_PAGEFAULT_FLAG_WP "
		               "(userfaultfd write-protect faults, Linux 5.7+)");
	return 0;
}

static void unregister_all(struct bgsnap_engine *e, struct uffd_priv *p)
{
	for (uint32_t i = 0; i < e->region_count; i++) {
		if (!p->regions[i].registered)
			continue;
		struct uffdio_range rg = { .start = (uint64_t)(uintptr_t)e->regions[i].addr,
		                           .len = e->regions[i].len };
		/* May fail if the host unmapped the region against the contract;
		 * closing the fd then drops what is left. */
		ioctl(p->fd, UFFDIO_UNREGISTER, &rg);
		p->regions[i].registered = 0;
	}
}

/* Removes protection from every region: the way out of any failure. */
static int unprotect_all(struct bgsnap_engine *e, struct uffd_priv *p)
{
	int first = 0;
	for (uint32_t i = 0; i < e->region_count; i++) {
		if (!p->regions[i].registered)
			continue;
		int r = uffd_wp(p->fd, (uint64_t)(uintptr_t)e->regions[i].addr, e->regions[i].len, 0, 0,
		                EAGAIN_RETRIES);
		atomic_fetch_add(&e->live->unprotect_calls, 1);
		if (r && r != -ENOENT && !first)
			first = r;
	}
	return first;
}

static void stop_handler(struct uffd_priv *p)
{
	if (!p->handler_started)
		return;
	uint64_t one = 1;
	while (write(p->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(p->handler, NULL);
	p->handler_started = 0;
}

static int find_region(struct bgsnap_engine *e, uint64_t addr, uint32_t *ri, uint64_t *page)
{
	for (uint32_t i = 0; i < e->region_count; i++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[i].addr;
		if (addr >= a && addr < a + e->regions[i].len) {
			*ri = i;
			*page = (addr - a) >> PAGE_SHIFT_;
			return 1;
		}
	}
	return 0;
}

static void wake_page(struct uffd_priv *p, uint64_t addr)
{
	struct uffdio_range rg = { .start = addr, .len = PAGE_SIZE_ };
	ioctl(p->fd, UFFDIO_WAKE, &rg);
}

static void unprotect_page(struct bgsnap_engine *e, struct uffd_priv *p, uint64_t addr)
{
	int r = uffd_wp(p->fd, addr, PAGE_SIZE_, 0, 0, 0);
	atomic_fetch_add_explicit(&e->live->unprotect_calls, 1, memory_order_relaxed);
	if (r == -EAGAIN) {
		/* A non-cooperative event is pending: it must be read (by us)
		 * before the mm settles.  Retry after the next read. */
		if (p->npending < p->pending_cap) {
			p->pending[p->npending++] = addr;
			return;
		}
		/* Cannot happen while events are read promptly; if it does, give
		 * up the snapshot: the writer then unprotects everything. */
	}
	if (r) {
		engine_fail(e, r, "cannot remove write protection at 0x%" PRIx64 ": %s", addr, strerror(-r));
		copybuf_close(&p->cb);
	}
}

static void handle_wp_fault(struct bgsnap_engine *e, struct uffd_priv *p, uint64_t addr)
{
	addr &= ~(uint64_t)(PAGE_SIZE_ - 1);
	uint32_t ri;
	uint64_t page;
	if (!find_region(e, addr, &ri, &page)) {
		wake_page(p, addr);
		return;
	}
	struct uffd_region *ur = &p->regions[ri];
	uint64_t w = page / 64, bit = 1ull << (page % 64);
	uint64_t old = atomic_fetch_or(&ur->claimed[w], bit);
	if (old & bit) {
		/* Someone else saves it; if it is saved already the fault raced
		 * with its unprotect: make sure the thread is awake. */
		if (atomic_load(&ur->done[w]) & bit)
			wake_page(p, addr);
		return;
	}
	uint32_t slot;
	void *dst = copybuf_get(&p->cb, &slot);
	if (dst) {
		memcpy(dst, (const void *)(uintptr_t)addr, PAGE_SIZE_);
		copybuf_put(&p->cb, ri, page, slot);
		atomic_fetch_add_explicit(&e->live->pages_faulted, 1, memory_order_relaxed);
	}
	/* dst == NULL: the buffer was closed, the snapshot is being abandoned;
	 * just let the thread go. */
	atomic_fetch_or(&ur->done[w], bit);
	unprotect_page(e, p, addr);
}

static void handle_discard(struct bgsnap_engine *e, struct uffd_priv *p, uint64_t start, uint64_t end,
                           const char *what)
{
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[ri].addr, b = a + e->regions[ri].len;
		uint64_t lo = start > a ? start : a, hi = end < b ? end : b;
		if (lo >= hi)
			continue;
		struct uffd_region *ur = &p->regions[ri];
		for (uint64_t pg = (lo - a) >> PAGE_SHIFT_; pg < (hi - a + PAGE_SIZE_ - 1) >> PAGE_SHIFT_; pg++) {
			if (!(atomic_load(&ur->done[pg / 64]) & (1ull << (pg % 64)))) {
				engine_fail(e, -EFAULT,
				            "region '%s': %s of [0x%" PRIx64 ", 0x%" PRIx64 ") during the snapshot "
				            "discarded pages that were not saved yet; the snapshot is abandoned "
				            "(regions must stay mapped and populated while a snapshot runs)",
				            e->regions[ri].name, what, lo, hi);
				copybuf_close(&p->cb);
				return;
			}
		}
	}
}

static void retry_pending(struct bgsnap_engine *e, struct uffd_priv *p)
{
	size_t n = p->npending;
	p->npending = 0;
	for (size_t i = 0; i < n; i++)
		unprotect_page(e, p, p->pending[i]);
}

static void *handler_main(void *arg)
{
	struct bgsnap_engine *e = arg;
	struct uffd_priv *p = e->method_priv;
	struct uffd_msg msgs[64];
	struct pollfd pfd[2] = { { .fd = p->fd, .events = POLLIN }, { .fd = p->stop_fd, .events = POLLIN } };
	for (;;) {
		int pr = poll(pfd, 2, p->npending ? 1 : -1);
		if (pr < 0 && errno != EINTR) {
			engine_fail(e, -errno, "poll on the userfaultfd failed: %s", strerror(errno));
			copybuf_close(&p->cb);
			break;
		}
		if (pfd[1].revents & POLLIN)
			break;
		ssize_t n = read(p->fd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				retry_pending(e, p);
				continue;
			}
			engine_fail(e, -errno, "reading the userfaultfd failed: %s", strerror(errno));
			copybuf_close(&p->cb);
			break;
		}
		size_t count = (size_t)n / sizeof(msgs[0]);
		for (size_t i = 0; i < count; i++) {
			struct uffd_msg *m = &msgs[i];
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
					handle_wp_fault(e, p, m->arg.pagefault.address);
				else
					wake_page(p, m->arg.pagefault.address & ~(uint64_t)(PAGE_SIZE_ - 1));
				break;
			case UFFD_EVENT_REMOVE:
				handle_discard(e, p, m->arg.remove.start, m->arg.remove.end, "MADV_DONTNEED/MADV_REMOVE");
				break;
			case UFFD_EVENT_UNMAP:
				handle_discard(e, p, m->arg.remove.start, m->arg.remove.end, "munmap");
				break;
			case UFFD_EVENT_REMAP:
				handle_discard(e, p, m->arg.remap.from, m->arg.remap.from + m->arg.remap.len, "mremap");
				break;
			default:
				break;
			}
		}
		retry_pending(e, p);
	}
	return NULL;
}

static int uffd_prepare(struct bgsnap_engine *e)
{
	struct uffd_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(&e->err, -ENOMEM, "out of memory");
	e->method_priv = p;
	p->fd = -1;
	p->stop_fd = -1;
	p->regions = calloc(e->region_count, sizeof(*p->regions));
	p->pending_cap = 4096;
	p->pending = malloc(sizeof(uint64_t) * p->pending_cap);
	if (!p->regions || !p->pending)
		return err_set(&e->err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct uffd_region *ur = &p->regions[i];
		ur->words = (e->regions[i].pages + 63) / 64;
		ur->claimed = calloc(ur->words, sizeof(uint64_t));
		ur->done = calloc(ur->words, sizeof(uint64_t));
		if (!ur->claimed || !ur->done)
			return err_set(&e->err, -ENOMEM, "out of memory for the page bitmaps");
	}
	int fd = uffd_open(WANT_FEATURES, UFFD_FEATURE_PAGEFAULT_FLAG_WP, &p->features, &e->err);
	if (fd < 0)
		return fd;
	p->fd = fd;
	atomic_store(&e->live->uffd_features, p->features);
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct uffdio_register reg = {
			.range = { .start = (uint64_t)(uintptr_t)e->regions[i].addr, .len = e->regions[i].len },
			.mode = UFFDIO_REGISTER_MODE_WP,
		};
		if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
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
		p->regions[i].registered = 1;
		if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT)))
			return err_set(&e->err, -ENOTSUP, "region '%s' cannot be write-protected by this kernel",
			               e->regions[i].name);
	}
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
	int r = copybuf_init(&p->cb, e->opts.copy_buffer_bytes);
	if (r)
		return err_set(&e->err, r, "cannot allocate the %zu-byte copy buffer", e->opts.copy_buffer_bytes);
	p->cb_ready = 1;
	atomic_store(&e->live->copybuf_capacity, (uint64_t)p->cb.nslots * PAGE_SIZE_);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (p->stop_fd < 0)
		return err_sys(&e->err, -errno, "eventfd");
	r = engine_thread(&p->handler, handler_main, e);
	if (r)
		return err_sys(&e->err, r, "cannot start the fault handler thread");
	p->handler_started = 1;
	return 0;
}

static int uffd_protect(struct bgsnap_engine *e)
{
	struct uffd_priv *p = e->method_priv;
	for (uint32_t i = 0; i < e->region_count; i++) {
		int r = uffd_wp(p->fd, (uint64_t)(uintptr_t)e->regions[i].addr, e->regions[i].len, 1, 0,
		                EAGAIN_RETRIES);
		if (r)
			return err_sys(&e->err, r, "cannot write-protect region '%s'", e->regions[i].name);
	}
	return 0;
}

/* Writes queued fault copies.  Returns 0 or -errno. */
static int drain_copies(struct bgsnap_engine *e, struct uffd_priv *p, int wait_ms)
{
	struct copybuf_item items[DRAIN_MAX];
	uint32_t n = copybuf_take(&p->cb, items, DRAIN_MAX, wait_ms);
	int r = 0;
	for (uint32_t i = 0; i < n && !r; i++)
		r = fmtw_pages(&e->fw, items[i].region, items[i].page, 1, copybuf_slot(&p->cb, items[i].slot));
	copybuf_release(&p->cb, items, n);
	if (n)
		engine_progress(e, &e->fw);
	return r;
}

/* Unprotects the runs of `ok` (pages whose content is saved) that contain
 * at least one page of `mine` (pages the writer itself saved: the handler
 * unprotects its own). */
static int unprotect_runs(struct bgsnap_engine *e, struct uffd_priv *p, uint8_t *base, uint64_t first,
                          uint64_t n, const uint64_t *ok, const uint64_t *mine)
{
	uint64_t i = 0;
	while (i < n) {
		if (!(ok[i / 64] >> (i % 64) & 1)) {
			i++;
			continue;
		}
		uint64_t s = i;
		int has_mine = 0;
		while (i < n && (ok[i / 64] >> (i % 64) & 1)) {
			has_mine |= (int)(mine[i / 64] >> (i % 64) & 1);
			i++;
		}
		if (!has_mine)
			continue;
		int r = uffd_wp(p->fd, (uint64_t)(uintptr_t)(base + (first + s) * PAGE_SIZE_), (i - s) * PAGE_SIZE_,
		                0, 0, EAGAIN_RETRIES);
		atomic_fetch_add_explicit(&e->live->unprotect_calls, 1, memory_order_relaxed);
		if (r)
			return err_sys(&e->werr, r, "cannot remove write protection after saving pages");
	}
	return 0;
}

static int sweep_region(struct bgsnap_engine *e, struct uffd_priv *p, uint32_t ri)
{
	struct region *rg = &e->regions[ri];
	struct uffd_region *ur = &p->regions[ri];
	uint64_t mine[SWEEP_PAGES / 64], ok[SWEEP_PAGES / 64];
	for (uint64_t first = 0; first < rg->pages; first += SWEEP_PAGES) {
		int r = drain_copies(e, p, 0);
		if (r)
			return r;
		if (engine_cancelled(e))
			return -ECANCELED;
		uint64_t n = rg->pages - first < SWEEP_PAGES ? rg->pages - first : SWEEP_PAGES;
		uint64_t w0 = first / 64, nw = (n + 63) / 64;
		for (uint64_t j = 0; j < nw; j++) {
			uint64_t left = n - j * 64;
			uint64_t mask = left >= 64 ? ~0ull : (1ull << left) - 1;
			mine[j] = mask & ~atomic_fetch_or(&ur->claimed[w0 + j], mask);
		}
		/* Write the runs won, straight from the protected memory. */
		uint64_t i = 0;
		while (i < n) {
			if (!(mine[i / 64] >> (i % 64) & 1)) {
				i++;
				continue;
			}
			uint64_t s = i;
			while (i < n && (mine[i / 64] >> (i % 64) & 1))
				i++;
			r = fmtw_pages(&e->fw, ri, first + s, i - s, rg->addr + (first + s) * PAGE_SIZE_);
			if (r)
				return r;
		}
		for (uint64_t j = 0; j < nw; j++)
			ok[j] = mine[j] | atomic_fetch_or(&ur->done[w0 + j], mine[j]);
		engine_progress(e, &e->fw);
		r = unprotect_runs(e, p, rg->addr, first, n, ok, mine);
		if (r)
			return r;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct bgsnap_engine *e = arg;
	struct uffd_priv *p = e->method_priv;
	int r = 0;
	for (uint32_t ri = 0; ri < e->region_count && !r; ri++)
		r = sweep_region(e, p, ri);
	/* Pages claimed by faults arrive through the copy buffer. */
	while (!r && e->fw.pages_written < e->pages_total) {
		if (engine_cancelled(e))
			r = -ECANCELED;
		else
			r = drain_copies(e, p, 10);
	}
	if (!r && engine_cancelled(e))
		r = -ECANCELED;
	if (!r)
		r = engine_finish_file(e, &e->fw, &e->sink, &e->werr);
	engine_progress(e, &e->fw);
	if (r) {
		/* Let every blocked thread go before anything else. */
		int ur = unprotect_all(e, p);
		if (ur)
			engine_fail(e, ur, "could not remove write protection everywhere: %s", strerror(-ur));
	}
	copybuf_close(&p->cb);
	stop_handler(p);
	atomic_store(&e->live->copybuf_peak, (uint64_t)copybuf_peak(&p->cb) * PAGE_SIZE_);
	atomic_store(&e->live->extra_mem_peak, (uint64_t)copybuf_peak(&p->cb) * PAGE_SIZE_);
	unregister_all(e, p);
	p->writer_rc = r;
	return NULL;
}

static int uffd_launch(struct bgsnap_engine *e)
{
	struct uffd_priv *p = e->method_priv;
	int r = engine_thread(&p->writer, writer_main, e);
	if (r) {
		p->writer_rc = r;
		unprotect_all(e, p);
		copybuf_close(&p->cb);
		stop_handler(p);
		unregister_all(e, p);
		return r;
	}
	p->writer_started = 1;
	return 0;
}

static int uffd_join(struct bgsnap_engine *e)
{
	struct uffd_priv *p = e->method_priv;
	if (p->writer_started) {
		pthread_join(p->writer, NULL);
		p->writer_started = 0;
	}
	int r = p->writer_rc;
	/* A failure recorded by the handler (a discarded region) explains a
	 * cancel better than the cancel itself. */
	if (e->err.code && (r == 0 || r == -ECANCELED))
		r = e->err.code;
	return r;
}

static void uffd_cancel(struct bgsnap_engine *e)
{
	struct uffd_priv *p = e->method_priv;
	if (p && p->cb_ready)
		copybuf_close(&p->cb);
}

static void uffd_abort(struct bgsnap_engine *e)
{
	struct uffd_priv *p = e->method_priv;
	if (!p)
		return;
	if (p->fd >= 0)
		unprotect_all(e, p);
	if (p->cb_ready)
		copybuf_close(&p->cb);
	stop_handler(p);
	if (p->fd >= 0)
		unregister_all(e, p);
}

static void uffd_release(struct bgsnap_engine *e)
{
	struct uffd_priv *p = e->method_priv;
	if (!p)
		return;
	stop_handler(p);
	if (p->fd >= 0) {
		unregister_all(e, p);
		close(p->fd);
	}
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->cb_ready)
		copybuf_destroy(&p->cb);
	if (p->regions) {
		for (uint32_t i = 0; i < e->region_count; i++) {
			free(p->regions[i].claimed);
			free(p->regions[i].done);
		}
	}
	free(p->regions);
	free(p->pending);
	free(p);
	e->method_priv = NULL;
}

const struct method_ops method_uffd_ops = {
	.method = BGSNAP_METHOD_UFFD,
	.probe = uffd_probe,
	.prepare = uffd_prepare,
	.protect = uffd_protect,
	.launch = uffd_launch,
	.join = uffd_join,
	.cancel = uffd_cancel,
	.abort = uffd_abort,
	.release = uffd_release,
};
