/*
 * engine.c - the engine's life cycle and public API: regions, hooks, the
 * pause sequence, results and statistics.  How pages are tracked and saved
 * belongs to the method files (method_*.c) behind struct method_ops.
 *
 * The pause sequence (bgsnap_start):
 *   before:  validate, open the sink, write the header, ops->prepare
 *   pause:   hooks.pause -> hooks.save_state -> ops->protect -> hooks.resume
 *   after:   ops->launch (background writer); bgsnap_wait -> ops->join
 * Anything that can be done before the pause is done before it.
 */
#include "engine/engine.h"
#include "engine/incr.h"
#include "engine/pace.h"
#include "engine/thp.h"

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "os/region_check.h"
#include "util/abi.h"
#include "util/clock.h"
#include "util/thread.h"
#include "util/tsan.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const char *bgsnap_version(void)
{
	return STR(BGSNAP_VERSION_MAJOR) "." STR(BGSNAP_VERSION_MINOR) "." STR(BGSNAP_VERSION_PATCH);
}

/* The size of struct bgsnap_options in its first version (up to log_ctx):
 * the smallest a caller may pass.  Fields added later lie beyond it. */
_Static_assert(FMT_PAGE_SIZE == PAGE_SIZE_, "the file counts pages in the library's page size");

#define OPTIONS_SIZE_FIRST (offsetof(struct bgsnap_options, log_ctx) + sizeof(void *))

void bgsnap_options_init(struct bgsnap_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->method = BGSNAP_METHOD_AUTO;
	opts->copy_buffer_bytes = 64u << 20;
	opts->pre_protect = 1;
	opts->direct_io = 1;
}

/* Copies the caller's options over the defaults: only the bytes the caller
 * says it has; a larger (newer) struct is accepted when the fields this
 * library does not know are all zero, i.e. left at their defaults. */
static int options_copy(struct bgsnap_options *o, const struct bgsnap_options *opts)
{
	bgsnap_options_init(o);
	if (!opts)
		return 0;
	size_t size = opts->size;
	if (size < OPTIONS_SIZE_FIRST)
		return -EINVAL;
	if (size > sizeof(*o)) {
		const unsigned char *tail = (const unsigned char *)opts + sizeof(*o);
		for (size_t i = 0; i < size - sizeof(*o); i++)
			if (tail[i])
				return -EINVAL;
		size = sizeof(*o);
	}
	memcpy(o, opts, size);
	o->size = sizeof(*o);
	return 0;
}

/* More copy buffer than the machine has memory can never be filled, and
 * would only fail later, in bgsnap_start, for want of address space. */
static size_t copybuf_bytes_max(void)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	if (pages <= 0 || (unsigned long)pages > SIZE_MAX / PAGE_SIZE_)
		return SIZE_MAX - PAGE_SIZE_ + 1;
	return (size_t)pages * PAGE_SIZE_;
}

int bgsnap_create(bgsnap_engine **out, const struct bgsnap_options *opts)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	struct bgsnap_options o;
	if (options_copy(&o, opts))
		return -EINVAL;
	if (o.method < 0 || o.method >= BGSNAP_METHOD_COUNT_)
		return -EINVAL;
	if (o.copy_buffer_bytes == 0)
		o.copy_buffer_bytes = PAGE_SIZE_;
	if (o.copy_buffer_bytes > copybuf_bytes_max())
		return -EINVAL;
	o.copy_buffer_bytes = (o.copy_buffer_bytes + PAGE_SIZE_ - 1) & ~(size_t)(PAGE_SIZE_ - 1);
	bgsnap_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->live = mmap(NULL, sizeof(*e->live), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (e->live == MAP_FAILED) {
		free(e);
		return -ENOMEM;
	}
	e->opts = o;
	e->fault_around_pages = 1;
	e->thp_collapse = 1;
	e->finish_paused = BGSNAP_FINISH_PAUSED_DEFAULT;
	pthread_mutex_init(&e->err_lock, NULL);
	pthread_mutex_init(&e->run_lock, NULL);
	e->sink.fd = -1;
	e->sink.dfd = -1;
	e->sink.dirfd = -1;
	*out = e;
	return 0;
}

static void state_free(struct bgsnap_state *st)
{
	for (size_t i = 0; i < st->count; i++)
		free(st->blobs[i].data);
	free(st->blobs);
	memset(st, 0, sizeof(*st));
}

void bgsnap_destroy(bgsnap_engine *e)
{
	if (!e)
		return;
	if (atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING) {
		bgsnap_cancel(e);
		bgsnap_wait(e);
	}
	state_free(&e->state);
	incr_free(e);
	free(e->regions);
	munmap(e->live, sizeof(*e->live));
	pthread_mutex_destroy(&e->err_lock);
	pthread_mutex_destroy(&e->run_lock);
	free(e);
}

const char *bgsnap_errmsg(const bgsnap_engine *e)
{
	return e ? e->err.msg : "no engine";
}

int engine_fail(struct bgsnap_engine *e, int code, const char *fmt, ...)
{
	va_list ap;
	char msg[sizeof(e->err.msg)];
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&e->err_lock);
	err_set(&e->err, code, "%s", msg);
	pthread_mutex_unlock(&e->err_lock);
	atomic_store(&e->cancel_requested, 1);
	return code;
}

int engine_cancelled(struct bgsnap_engine *e)
{
	return atomic_load_explicit(&e->cancel_requested, memory_order_relaxed);
}

void engine_log(struct bgsnap_engine *e, int level, const char *fmt, ...)
{
	if (!e->opts.log || level > BGSNAP_LOG_DEBUG)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->opts.log(e->opts.log_ctx, level, msg);
}

int bgsnap_add_region(bgsnap_engine *e, const char *name, void *addr, size_t len)
{
	if (!e)
		return -EINVAL;
	if (e->starting || atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING)
		return err_set(&e->err, -EBUSY, "cannot add a region while a snapshot runs");
	err_clear(&e->err);
	size_t nlen = name ? strlen(name) : 0;
	if (nlen == 0 || nlen > FMT_NAME_MAX || !fmt_name_valid(name, nlen))
		return err_set(&e->err, -EINVAL, "region name must be 1..%u printable ASCII characters",
		               FMT_NAME_MAX);
	uintptr_t a = (uintptr_t)addr;
	if (len == 0)
		return err_set(&e->err, -EINVAL, "region '%s' is empty", name);
	if (a % PAGE_SIZE_ || len % PAGE_SIZE_)
		return err_set(&e->err, -EINVAL,
		               "region '%s' (%p, %zu bytes) is not page-aligned: address and length "
		               "must be multiples of %u", name, addr, len, PAGE_SIZE_);
	if (a + len < a)
		return err_set(&e->err, -EINVAL, "region '%s' wraps around the address space", name);
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct region *r = &e->regions[i];
		if (!strcmp(r->name, name))
			return err_set(&e->err, -EINVAL, "a region named '%s' already exists", name);
		uintptr_t ra = (uintptr_t)r->addr;
		if (a < ra + r->len && ra < a + len)
			return err_set(&e->err, -EINVAL, "region '%s' overlaps region '%s'", name, r->name);
	}
	int shared = 0;
	uint64_t page_bytes = PAGE_SIZE_;
	int rc = region_check(addr, len, &shared, &page_bytes, &e->err);
	if (rc)
		return rc;
	/* A chain's kept track reads the regions from its fault handler. */
	incr_regions_change(e);
	struct region *nr = realloc(e->regions, sizeof(*nr) * (e->region_count + 1));
	if (!nr)
		return err_set(&e->err, -ENOMEM, "out of memory");
	e->regions = nr;
	struct region *r = &nr[e->region_count];
	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, nlen + 1);
	r->addr = addr;
	r->len = len;
	r->pages = len / PAGE_SIZE_;
	r->first_global = e->pages_total;
	r->shared = shared;
	r->granule_pages = page_bytes / PAGE_SIZE_;
	e->pages_total += r->pages;
	return (int)e->region_count++;
}

int bgsnap_set_hooks(bgsnap_engine *e, const struct bgsnap_hooks *hooks)
{
	if (!e)
		return -EINVAL;
	if (e->starting || atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING)
		return err_set(&e->err, -EBUSY, "cannot change hooks while a snapshot runs");
	if (hooks)
		e->hooks = *hooks;
	else
		memset(&e->hooks, 0, sizeof(e->hooks));
	return 0;
}

int bgsnap_set_param(bgsnap_engine *e, int param, int64_t value)
{
	if (!e)
		return -EINVAL;
	if (e->starting || atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING)
		return err_set(&e->err, -EBUSY, "cannot change a parameter while a snapshot runs");
	err_clear(&e->err);
	switch (param) {
	case BGSNAP_PARAM_FAULT_AROUND_PAGES:
		if (value == 0)
			value = 1;
		if (value < 0 || value > 64 || (value & (value - 1)))
			return err_set(&e->err, -EINVAL, "fault-around must be a power of two from 1 to 64 "
			               "pages, not %" PRId64, value);
		e->fault_around_pages = (unsigned)value;
		return 0;
	case BGSNAP_PARAM_THP_COLLAPSE:
		if (value != 0 && value != 1)
			return err_set(&e->err, -EINVAL, "thp-collapse is 0 or 1, not %" PRId64, value);
		e->thp_collapse = (unsigned)value;
		return 0;
	case BGSNAP_PARAM_FINISH_PAUSED:
		if (value < -1 || value > 100000)
			return err_set(&e->err, -EINVAL, "finish-paused is -1, 0 or a percentage up to 100000, not %" PRId64,
			               value);
		e->finish_paused = value;
		return 0;
	default:
		return err_set(&e->err, -EINVAL, "unknown parameter %d", param);
	}
}

int bgsnap_get_param(const bgsnap_engine *e, int param, int64_t *value)
{
	if (!e || !value)
		return -EINVAL;
	switch (param) {
	case BGSNAP_PARAM_FAULT_AROUND_PAGES:
		*value = e->fault_around_pages;
		return 0;
	case BGSNAP_PARAM_THP_COLLAPSE:
		*value = e->thp_collapse;
		return 0;
	case BGSNAP_PARAM_FINISH_PAUSED:
		*value = e->finish_paused;
		return 0;
	default:
		return -EINVAL;
	}
}

int bgsnap_state_add(bgsnap_state *st, const char *name, const void *data, size_t len)
{
	if (!st || !name || (!data && len))
		return -EINVAL;
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen > FMT_NAME_MAX || !fmt_name_valid(name, nlen))
		return -EINVAL;
	for (size_t i = 0; i < st->count; i++)
		if (!strcmp(st->blobs[i].name, name))
			return -EINVAL;
	if (st->count == st->cap) {
		size_t nc = st->cap ? st->cap * 2 : 8;
		struct state_blob *nb = realloc(st->blobs, nc * sizeof(*nb));
		if (!nb)
			return -ENOMEM;
		st->blobs = nb;
		st->cap = nc;
	}
	void *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	struct state_blob *b = &st->blobs[st->count++];
	memcpy(b->name, name, nlen + 1);
	b->data = copy;
	b->len = len;
	st->bytes += len;
	return 0;
}

int engine_finish_file(struct bgsnap_engine *e, struct fmt_writer *w, struct sink *s,
                       struct bgsnap_err *err)
{
	for (size_t i = 0; i < e->state.count; i++) {
		struct state_blob *b = &e->state.blobs[i];
		int r = fmtw_state(w, b->name, b->data, b->len);
		if (r)
			return r;
	}
	uint64_t t0 = now_ns();
	int r = fmtw_finish(w, &e->meta);
	/* The last chunks are written by the finish. */
	engine_progress(e, w);
	if (!r)
		r = sink_commit(s, err);
	atomic_store(&e->live->commit_us, us_since(t0));
	return r;
}

/* Writes every region through `w`, in chunks so that progress and cancel
 * are seen while it runs.  Shared with the fork child. */

void engine_writeout_init(struct bgsnap_engine *e, struct engine_writeout *o, const struct fmt_writer *w, int paced)
{
	/* 2048 pages: 8 MiB between progress updates.  Paced, that is a
	 * burst: 256 KiB (the tracking writer's batch) keeps the rate even at
	 * 1 MB/s. */
	o->step = paced && e->opts.max_bytes_per_s ? 64 : 2048;
	pace_init(&o->pace, paced ? e->opts.max_bytes_per_s : 0, w->bytes_written);
}

int engine_write_span(struct bgsnap_engine *e, struct fmt_writer *w, struct engine_writeout *o, uint32_t ri,
                      uint64_t lo, uint64_t hi)
{
	struct region *rg = &e->regions[ri];
	for (uint64_t p = lo; p < hi; p += o->step) {
		if (engine_cancelled(e))
			return -ECANCELED;
		uint64_t n = hi - p < o->step ? hi - p : o->step;
		REGION_READ_BEGIN();
		int r = fmtw_pages(w, ri, p, n, rg->addr + p * PAGE_SIZE_);
		REGION_READ_END();
		if (!r)
			r = pace_wait(&o->pace, e, w->bytes_written);
		if (r)
			return r;
		engine_progress(e, w);
	}
	return 0;
}

int engine_write_all(struct bgsnap_engine *e, struct fmt_writer *w, int paced)
{
	struct engine_writeout o;
	engine_writeout_init(e, &o, w, paced);
	for (uint32_t ri = 0; ri < e->region_count; ri++) {
		int r = engine_write_span(e, w, &o, ri, 0, e->regions[ri].pages);
		if (r)
			return r;
	}
	/* A cancel that came during the last chunk still counts. */
	return engine_cancelled(e) ? -ECANCELED : 0;
}

/* Field by field: a stats reader may be looking (memset would race). */
static void live_reset(struct live_stats *l)
{
	atomic_store(&l->method, 0);
	atomic_store(&l->error, 0);
	atomic_store(&l->pause_us, 0);
	atomic_store(&l->wp_us, 0);
	atomic_store(&l->total_us, 0);
	atomic_store(&l->state_bytes, 0);
	atomic_store(&l->uffd_features, 0);
	atomic_store(&l->copybuf_capacity, 0);
	atomic_store(&l->pages_saved, 0);
	atomic_store(&l->pages_zero, 0);
	atomic_store(&l->pages_faulted, 0);
	atomic_store(&l->bytes_written, 0);
	atomic_store(&l->copybuf_peak, 0);
	atomic_store(&l->extra_mem_peak, 0);
	atomic_store(&l->unprotect_calls, 0);
	atomic_store(&l->unprotect_us, 0);
	atomic_store(&l->commit_us, 0);
	atomic_store(&l->prewp_us, 0);
	atomic_store(&l->reprotect_pages, 0);
	atomic_store(&l->direct_io, 0);
	atomic_store(&l->writer_us, 0);
	atomic_store(&l->tracking, 0);
	atomic_store(&l->incremental, 0);
	atomic_store(&l->depth, 0);
	atomic_store(&l->dirty_pages, 0);
	atomic_store(&l->scan_us, 0);
	atomic_store(&l->prescan_us, 0);
	atomic_store(&l->prescan_pages, 0);
	atomic_store(&l->finished_paused, 0);
	atomic_store(&l->finish_pause_us, 0);
	atomic_store(&l->finish_pages, 0);
	atomic_store(&l->finish_hook_us, 0);
	atomic_store(&l->fault_wait_us, 0);
	atomic_store(&l->fault_threads_max, 0);
	atomic_store(&l->chunks_compressed, 0);
	atomic_store(&l->chunks_raw, 0);
}

static void run_reset(bgsnap_engine *e)
{
	state_free(&e->state);
	live_reset(e->live);
	atomic_store(&e->cancel_requested, 0);
	err_clear(&e->err);
	err_clear(&e->werr);
	e->method_priv = NULL;
	e->result = 0;
	memset(&e->fw, 0, sizeof(e->fw));
	memset(&e->meta, 0, sizeof(e->meta));
}

static void method_abort(bgsnap_engine *e)
{
	if (e->ops->abort)
		e->ops->abort(e);
}

static void method_release(bgsnap_engine *e)
{
	if (e->ops->release)
		e->ops->release(e);
}

/* Compressor threads beside the writer: the option, or one per CPU but
 * the writer's (at least one, at most 8). */
static unsigned compress_threads(const bgsnap_engine *e)
{
	if (e->opts.compress == BGSNAP_COMPRESS_NONE || (e->ops->caps & METHOD_WRITES_IN_CHILD))
		return 0;
	if (e->opts.compress_threads)
		return e->opts.compress_threads;
	long n = sysconf(_SC_NPROCESSORS_ONLN) - 1;
	return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

/* The file's header: the regions. */
static int write_header(bgsnap_engine *e)
{
	struct fmt_region *fr = calloc(e->region_count, sizeof(*fr));
	if (!fr)
		return err_set(&e->err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < e->region_count; i++) {
		fr[i].name = e->regions[i].name;
		fr[i].addr = (uint64_t)(uintptr_t)e->regions[i].addr;
		fr[i].size = e->regions[i].len;
	}
	struct fmt_out out = { &e->sink, sink_out_writev, sink_out_flush, SINK_IOV_MAX, sink_out_rate };
	int adaptive = e->opts.compress == BGSNAP_COMPRESS_ZSTD_AUTO;
	struct fmt_codec codec = { adaptive ? FMT_COMPRESS_ZSTD : e->opts.compress, e->opts.compress_level,
	                           compress_threads(e), e->opts.page_aligned != 0, adaptive,
	                           /* stop writes in the pause, unpaced */
	                           e->ops->method == BGSNAP_METHOD_STOP ? 0 : e->opts.max_bytes_per_s };
	int r = fmtw_begin_lineage(&e->fw, &out, fr, e->region_count, &codec, incr_lineage(e), &e->werr);
	free(fr);
	return r ? err_set(&e->err, r, "%s", e->werr.msg) : 0;
}

/* The pause: hooks.pause -> hooks.save_state -> ops->protect ->
 * hooks.resume.  Returns 0 or -errno; the caller aborts the method. */
static int pause_and_protect(bgsnap_engine *e)
{
	e->t_pause_ns = now_ns();
	if (e->hooks.pause && e->hooks.pause(e->hooks.ctx) != 0)
		return engine_fail(e, -ECANCELED, "the pause hook failed; the snapshot is abandoned and nothing "
		                   "is left protected");
	e->meta.created_unix_ns = realtime_ns();
	if (e->hooks.save_state && e->hooks.save_state(&e->state, e->hooks.ctx) != 0) {
		if (e->hooks.resume)
			e->hooks.resume(e->hooks.ctx);
		return engine_fail(e, -ECANCELED, "the save_state hook failed; the snapshot is abandoned and "
		                   "nothing is left protected");
	}
	atomic_store(&e->live->state_bytes, e->state.bytes);
	uint64_t t_wp = now_ns();
	int r = incr_pause(e);
	if (!r)
		r = e->ops->protect(e);
	atomic_store(&e->live->wp_us, us_since(t_wp));
	if (e->hooks.resume)
		e->hooks.resume(e->hooks.ctx);
	e->meta.pause_us = us_since(e->t_pause_ns);
	atomic_store(&e->live->pause_us, e->meta.pause_us);
	return r;
}

/* Everything after the sink is open.  On failure the method and the sink
 * are aborted and the run is FAILED with the error. */
static int start_run(bgsnap_engine *e)
{
	e->t_start_ns = now_ns();
	/* RUNNING from here, so that statistics read meanwhile (the stop
	 * method writes everything inside this call) describe this run. */
	pthread_mutex_lock(&e->run_lock);
	atomic_store(&e->run_state, BGSNAP_STATE_RUNNING);
	pthread_mutex_unlock(&e->run_lock);
	int r = incr_begin(e);
	if (!r)
		r = write_header(e);
	if (r)
		goto fail_sink;
	e->meta.method = e->ops->method;
	/* Which regions are huge pages, before protection splits them. */
	if (e->thp_collapse && (e->ops->caps & METHOD_SPLITS_HUGE_PAGES) && !incr_thp_known(e)) {
		thp_survey(e);
		incr_thp_keep(e);
	}
	r = e->ops->prepare ? e->ops->prepare(e) : 0;
	if (!r)
		r = pause_and_protect(e);
	if (!r) {
		r = e->ops->launch ? e->ops->launch(e) : 0;
		/* Nothing runs in the background: undo it all here, and say so
		 * (bgsnap_wait then reports the same). */
		if (r)
			engine_fail(e, r, "cannot start the background writer: %s", strerror(-r));
	}
	if (r) {
		method_abort(e);
		goto fail_release;
	}
	pthread_mutex_lock(&e->run_lock);
	e->launched = 1;   /* from now on ops->cancel may look at method_priv */
	pthread_mutex_unlock(&e->run_lock);
	return 0;

fail_release:
	method_release(e);
fail_sink:
	incr_end(e, r);
	if (!e->err.code && e->werr.code)
		err_set(&e->err, e->werr.code, "%s", e->werr.msg);
	fmtw_free(&e->fw);
	sink_abort(&e->sink);
	state_free(&e->state);
	e->result = r;
	atomic_store(&e->live->error, r);
	atomic_store(&e->run_state, BGSNAP_STATE_FAILED);
	return r;
}

static int start_check(bgsnap_engine *e)
{
	if (e->starting || atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING)
		return err_set(&e->err, -EBUSY, "a snapshot is already running");
	run_reset(e);
	if (e->region_count == 0)
		return err_set(&e->err, -EINVAL, "no regions to snapshot: add one with bgsnap_add_region");
	int method = e->opts.method;
	int r = incr_check(e, &method);
	if (r)
		return r;
	r = engine_resolve_method(method, &e->ops, &e->err);
	if (r)
		return r;
	atomic_store(&e->live->method, e->ops->method);
	/* A fork child shares MAP_SHARED memory with its parent instead of
	 * getting a copy-on-write view: it would save the parent's later
	 * writes. */
	for (uint32_t i = 0; (e->ops->caps & METHOD_NO_SHARED_REGIONS) && i < e->region_count; i++)
		if (e->regions[i].shared)
			return err_set(&e->err, -ENOTSUP,
			               "the %s method cannot snapshot region '%s': it is shared memory "
			               "(MAP_SHARED: memfd, shmem or hugetlb), which a fork child shares instead "
			               "of getting a copy-on-write view, so it would save writes made after the "
			               "pause; use uffd, uffd-signal, mprotect or stop",
			               bgsnap_method_name(e->ops->method), e->regions[i].name);
	return 0;
}

/*
 * Runs start_run in the caller's thread with SIGPIPE blocked: the header
 * (and, for stop, everything) is written from here, and a closed pipe must
 * give -EPIPE, not kill the host.  A SIGPIPE we caused is swallowed; one
 * that was pending before is left alone.
 */
static int start_guarded(bgsnap_engine *e)
{
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	int was_pending = sigismember(&pending, SIGPIPE);
	e->starting = 1;
	int r = start_run(e);
	e->starting = 0;
	if (!was_pending) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* `starting` keeps the hooks (which run inside start) from adding regions
 * or starting again before the run is RUNNING. */
int bgsnap_start(bgsnap_engine *e, const char *path)
{
	if (!e)
		return -EINVAL;
	int r = start_check(e);
	if (r)
		return r;
	/* Direct writes pay where the host runs beside the writer; stop writes
	 * with the host paused, where the page cache measured faster, and the
	 * fork child has no writing thread. */
	int direct = e->opts.direct_io && (e->ops->caps & METHOD_WRITES_BESIDE_HOST);
	r = sink_open_path(&e->sink, path, direct, &e->err);
	if (r)
		return r;
	sink_set_async(&e->sink, direct);
	atomic_store(&e->live->direct_io, e->sink.dfd >= 0);
	return start_guarded(e);
}

int bgsnap_start_fd(bgsnap_engine *e, int fd)
{
	if (!e)
		return -EINVAL;
	int r = start_check(e);
	if (r)
		return r;
	if (fd < 0)
		return err_set(&e->err, -EBADF, "bad file descriptor %d", fd);
	r = sink_open_fd(&e->sink, fd, &e->err);
	if (r)
		return r;
	return start_guarded(e);
}

int bgsnap_wait(bgsnap_engine *e)
{
	if (!e)
		return -EINVAL;
	if (atomic_load(&e->run_state) != BGSNAP_STATE_RUNNING) {
		if (atomic_load(&e->run_state) == BGSNAP_STATE_IDLE)
			return err_set(&e->err, -EINVAL, "no snapshot was started");
		return e->result;
	}
	int r = e->ops->join ? e->ops->join(e) : 0;
	pthread_mutex_lock(&e->err_lock);
	if (r && !e->err.code && e->werr.code)
		err_set(&e->err, e->werr.code, "%s", e->werr.msg);
	if (r && !e->err.code)
		err_set(&e->err, r, r == -ECANCELED ? "the snapshot was cancelled" : "snapshot failed: %s",
		        strerror(-r));
	pthread_mutex_unlock(&e->err_lock);
	if (r)
		sink_abort(&e->sink);
	atomic_store(&e->live->total_us, us_since(e->t_start_ns));
	thp_recollapse(e);
	e->result = r;
	atomic_store(&e->live->error, r);
	pthread_mutex_lock(&e->run_lock);
	atomic_store(&e->run_state, r ? BGSNAP_STATE_FAILED : BGSNAP_STATE_DONE);
	e->launched = 0;
	pthread_mutex_unlock(&e->run_lock);
	method_release(e);
	incr_end(e, r);
	fmtw_free(&e->fw);
	engine_log(e, r ? BGSNAP_LOG_ERROR : BGSNAP_LOG_INFO, "snapshot %s: %s",
	           r ? "failed" : "committed", r ? e->err.msg : "ok");
	return r;
}

int bgsnap_cancel(bgsnap_engine *e)
{
	if (!e)
		return -EINVAL;
	atomic_store(&e->cancel_requested, 1);
	pthread_mutex_lock(&e->run_lock);
	/* Before launch the method is still being set up in the starting
	 * thread; the flag alone stops it as soon as it runs. */
	if (atomic_load(&e->run_state) == BGSNAP_STATE_RUNNING && e->launched && e->ops->cancel)
		e->ops->cancel(e);
	pthread_mutex_unlock(&e->run_lock);
	return 0;
}

void engine_progress(struct bgsnap_engine *e, const struct fmt_writer *w)
{
	atomic_store_explicit(&e->live->pages_saved, w->pages_written, memory_order_relaxed);
	atomic_store_explicit(&e->live->pages_zero, w->pages_zero, memory_order_relaxed);
	atomic_store_explicit(&e->live->bytes_written, w->bytes_written, memory_order_relaxed);
	atomic_store_explicit(&e->live->chunks_compressed, w->chunks_compressed, memory_order_relaxed);
	atomic_store_explicit(&e->live->chunks_raw, w->chunks_raw, memory_order_relaxed);
}

int bgsnap_get_stats(const bgsnap_engine *e, struct bgsnap_stats *user, size_t user_size)
{
	if (!e || !user)
		return -EINVAL;
	struct bgsnap_stats s, *out = &s;
	memset(out, 0, sizeof(*out));
	int st = atomic_load(&((bgsnap_engine *)e)->run_state);
	out->state = st;
	out->method = atomic_load(&e->live->method);
	if (out->method == BGSNAP_METHOD_AUTO)
		out->method = e->opts.method;
	out->error = st == BGSNAP_STATE_FAILED ? atomic_load(&e->live->error) : 0;
	out->pages_total = e->pages_total;
	struct live_stats *l = e->live;
	out->pages_saved = atomic_load(&l->pages_saved);
	out->pages_zero = atomic_load(&l->pages_zero);
	out->pages_faulted = atomic_load(&l->pages_faulted);
	out->bytes_written = atomic_load(&l->bytes_written);
	out->copybuf_peak = atomic_load(&l->copybuf_peak);
	out->extra_mem_peak = atomic_load(&l->extra_mem_peak);
	out->unprotect_calls = atomic_load(&l->unprotect_calls);
	out->state_bytes = atomic_load(&l->state_bytes);
	out->copybuf_capacity = atomic_load(&l->copybuf_capacity);
	out->pause_us = atomic_load(&l->pause_us);
	out->wp_us = atomic_load(&l->wp_us);
	out->total_us = st == BGSNAP_STATE_RUNNING ? us_since(e->t_start_ns) : atomic_load(&l->total_us);
	out->uffd_features = atomic_load(&l->uffd_features);
	out->unprotect_us = atomic_load(&l->unprotect_us);
	out->commit_us = atomic_load(&l->commit_us);
	out->prewp_us = atomic_load(&l->prewp_us);
	out->reprotect_pages = atomic_load(&l->reprotect_pages);
	out->direct_io = atomic_load(&l->direct_io);
	out->writer_us = atomic_load(&l->writer_us);
	out->tracking = atomic_load(&l->tracking);
	out->incremental = atomic_load(&l->incremental);
	out->depth = atomic_load(&l->depth);
	out->dirty_pages = atomic_load(&l->dirty_pages);
	out->scan_us = atomic_load(&l->scan_us);
	out->prescan_us = atomic_load(&l->prescan_us);
	out->prescan_pages = atomic_load(&l->prescan_pages);
	out->finished_paused = atomic_load(&l->finished_paused);
	out->finish_pause_us = atomic_load(&l->finish_pause_us);
	out->finish_pages = atomic_load(&l->finish_pages);
	out->finish_hook_us = atomic_load(&l->finish_hook_us);
	out->fault_wait_us = atomic_load(&l->fault_wait_us);
	out->fault_threads = (uint32_t)atomic_load(&l->fault_threads_max);
	out->chunks_compressed = atomic_load(&l->chunks_compressed);
	out->chunks_raw = atomic_load(&l->chunks_raw);
	if (out->writer_us)
		out->achieved_bytes_per_s = (uint64_t)((double)out->bytes_written * 1e6 / (double)out->writer_us);
	abi_copy_out(user, user_size, out, sizeof(*out));
	return 0;
}
