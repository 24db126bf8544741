/*
 * run.c - one method of `bgsnap bench`: an engine over the workload's
 * region with hooks that pause the writers and record their step counts,
 * the writers' rate before and during the snapshot, their first-write
 * latencies, then the verification (verify.c) and --restore (restore.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cli/clock.h"
#include "cli/progress.h"
#include "hostcpu.h"
#include "sampler.h"
#include "stream_out.h"

/* What the engine's hooks work on. */
struct hook_ctx {
	wl *w;
	int paused;
	int finish_pauses;       /* later calls, to finish paused           */
	double t_pause;          /* the host was asked to stop              */
	uint64_t steps[WL_MAX_THREADS];
};

static int hook_pause(void *ctx)
{
	struct hook_ctx *h = ctx;
	/* A second call stops the host to finish the snapshot: the instant,
	 * and what the oracle checks against, stay the first call's. */
	if (h->paused) {
		wl_pause(h->w);
		h->finish_pauses++;
		return 0;
	}
	h->t_pause = mono_s();
	wl_pause(h->w);
	h->paused++;
	memcpy(h->steps, wl_paused_steps(h->w), sizeof(h->steps));
	return 0;
}

static int hook_save_state(bgsnap_state *st, void *ctx)
{
	struct hook_ctx *h = ctx;
	return wl_blob_add(st, wl_get_params(h->w), h->steps);
}

static void hook_resume(void *ctx)
{
	struct hook_ctx *h = ctx;
	wl_resume(h->w, true);
}

static bool refused(int r)
{
	return r == -ENOTSUP || r == -ENOSYS || r == -EPERM || r == -EOPNOTSUPP;
}

/* A method the engine refuses here only skips it in a list of methods. */
static void failed(const struct bench_opts *o, struct bench_result *res, int r, const char *fmt, const char *why)
{
	res->status = o->list && refused(r) ? BENCH_SKIPPED : BENCH_ERROR;
	snprintf(res->msg, sizeof(res->msg), fmt, why[0] ? why : strerror(-r));
}

static void engine_failed(const struct bench_opts *o, struct bench_result *res, int r, bgsnap_engine *e)
{
	failed(o, res, r, "%s", bgsnap_errmsg(e));
	bgsnap_destroy(e);
}

static void snapshot_path(const struct bench_opts *o, int method, char *out, size_t len)
{
	const char *name = bgsnap_method_name(method);
	if (o->out && !o->list)
		snprintf(out, len, "%s", o->out);
	else if (o->out)
		snprintf(out, len, "%s.%s", o->out, name);
	else {
		const char *dir = getenv("TMPDIR");
		snprintf(out, len, "%s/bgsnap-bench.%ld.%s", dir && *dir ? dir : "/tmp", (long)getpid(), name);
	}
}

/* The engine for one method over the region, with the hooks; NULL after
 * filling res when it cannot be made. */
static bgsnap_engine *make_engine(const struct bench_opts *o, int method, struct hook_ctx *h,
                                  struct bench_result *res)
{
	struct bgsnap_options opts;
	bgsnap_options_init(&opts);
	opts.method = method;
	opts.copy_buffer_bytes = o->buffer;
	opts.wp_threads = o->wp_threads;
	if (o->no_pre_protect)
		opts.pre_protect = 0;
	if (o->buffered_io)
		opts.direct_io = 0;
	opts.compress = o->compress;
	opts.compress_level = o->compress_level;
	opts.compress_threads = o->compress_threads;
	opts.page_aligned = o->page_aligned;
	opts.max_bytes_per_s = o->max_rate;
	bgsnap_engine *e = NULL;
	int r = bgsnap_create(&e, &opts);
	if (r < 0) {
		failed(o, res, r, "bgsnap_create: %s", "");
		return NULL;
	}
	struct bgsnap_hooks hooks = {
		.pause = hook_pause, .save_state = hook_save_state, .resume = hook_resume, .ctx = h,
	};
	if (o->fault_around)
		r = bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, o->fault_around);
	if (r == 0 && o->finish_paused_set)
		r = bgsnap_set_param(e, BGSNAP_PARAM_FINISH_PAUSED, o->finish_paused);
	if (r == 0)
		r = bgsnap_add_region(e, "mem", wl_mem(h->w), wl_mem_bytes(h->w));
	if (r == 0)
		r = bgsnap_set_hooks(e, &hooks);
	if (r < 0) {
		engine_failed(o, res, r, e);
		return NULL;
	}
	return e;
}

/*
 * Lets the writers reach their steady rate before anything is measured.  On
 * these VMs the first write to each page after it was filled costs a few
 * microseconds of hypervisor work (invisible to the guest as a fault), so a
 * fresh region writes up to 100x slower for a while; measuring a method then
 * would compare it against a different workload.  Stable = two consecutive
 * 50 ms windows within 20%; at most 5 s.
 */
static void warm_up(wl *w)
{
	double prev = 0;
	for (int i = 0; i < 100; i++) {
		double t0 = mono_s();
		uint64_t s0 = wl_total_steps(w);
		sleep_ms(50);
		double rate = (double)(wl_total_steps(w) - s0) / (mono_s() - t0);
		if (prev > 0 && rate > prev * 0.8 && rate < prev * 1.2)
			return;
		prev = rate;
	}
}

/* Starts the writers and measures their rate before the snapshot; returns
 * the end of that window (its time and step count), or -1 with res filled. */
static int writers_before(const struct bench_opts *o, wl *w, struct bench_result *res, double *t, uint64_t *steps)
{
	char err[256];
	if (wl_start(w, err, sizeof(err)) < 0) {
		res->status = BENCH_ERROR;
		snprintf(res->msg, sizeof(res->msg), "starting the writers: %s", err);
		return -1;
	}
	/* Every thread must have written before the pause (the oracle checks
	 * then see at least one write per thread). */
	if (wl_wait_progress(w, 10000) < 0) {
		wl_stop(w);
		res->status = BENCH_ERROR;
		snprintf(res->msg, sizeof(res->msg), "the writer threads made no progress in 10 s");
		return -1;
	}
	if (o->before_ms)
		warm_up(w);
	double ta = mono_s();
	uint64_t sa = wl_total_steps(w);
	sleep_ms(o->before_ms);
	*t = mono_s();
	*steps = wl_total_steps(w);
	/* No window, no rate: a few steps over microseconds would mean nothing. */
	res->wps_before = o->before_ms && *t > ta ? (double)(*steps - sa) / (*t - ta) : 0;
	return 0;
}

/* What the recovery wait computes on the sampler's series. */
struct loss_ctx {
	double before, pause, end;
	double after_s;          /* the after-window: 1 s, or a shorter tail */
	struct hostloss hl;
	int rc;
	double after;
};

static void loss_of(const struct hl_point *p, size_t n, void *arg)
{
	struct loss_ctx *c = arg;
	c->rc = hostloss_compute(p, n, c->before, c->pause, c->end, &c->hl);
	c->after = hostloss_rate(p, n, c->end, c->end + c->after_s);
}

/* --series: the windows of the measure, and the second before the pause. */
struct series_ctx {
	const struct loss_ctx *c;
	FILE *f;
	const char *method;
};

static void series_of(const struct hl_point *p, size_t n, void *arg)
{
	struct series_ctx *s = arg;
	const struct loss_ctx *c = s->c;
	for (double a = c->pause - 1.0; a + HOSTLOSS_WINDOW_S <= c->hl.until + 1.0; a += HOSTLOSS_WINDOW_S) {
		double r = hostloss_rate(p, n, a, a + HOSTLOSS_WINDOW_S);
		if (r >= 0)
			fprintf(s->f, "%s %.3f %.3f %d\n", s->method, a - c->pause, r / c->before, a >= c->end);
	}
}

/*
 * After the snapshot's end, the writers go on until their rate is back
 * (hostloss.h) and a full after-window was seen, or the tail is over; then
 * the host's loss and its rate after.  Without a rate before
 * (--duration-before 0) there is no loss to measure.
 */
static void measure_loss(const struct bench_opts *o, struct sampler *sm, const struct hook_ctx *h, double end,
                         double tail, struct bench_result *res)
{
	double after = tail < HOSTLOSS_AFTER_S ? tail : HOSTLOSS_AFTER_S;
	struct loss_ctx c = { .before = res->wps_before, .pause = h->t_pause, .end = end, .after_s = after };
	for (;;) {
		sleep_ms(50);
		double now = mono_s();
		sampler_with(sm, loss_of, &c);
		if (c.rc < 0 || now >= end + tail || (c.hl.recovered && now >= end + after))
			break;
	}
	sampler_stop(sm);
	sampler_with(sm, loss_of, &c);
	FILE *f = o->series && c.rc == 0 ? fopen(o->series, "ae") : NULL;
	if (f) {
		struct series_ctx sc = { &c, f, bgsnap_method_name(res->method) };
		sampler_with(sm, series_of, &sc);
		fclose(f);
	}
	res->host_measured = c.rc == 0;
	res->host_lost_ms = c.rc == 0 ? c.hl.lost_s * 1000.0 : 0;
	res->host_recovered = c.rc == 0 && c.hl.recovered;
	res->host_lost_span_ms = c.rc == 0 ? (c.hl.until - c.pause) * 1000.0 : 0;
	res->wps_after = c.after > 0 ? c.after : 0;
}

/* bgsnap_wait in a thread of its own, so that the line can be drawn
 * meanwhile: the engine's state turns DONE only inside bgsnap_wait. */
struct waiter {
	bgsnap_engine *e;
	int rc;
	atomic_bool done;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	w->rc = bgsnap_wait(w->e);
	atomic_store(&w->done, true);
	return NULL;
}

/* bgsnap_wait, drawing the progress line meanwhile if it is shown: the
 * engine's counters polled every 50 ms until the snapshot is over. */
static int wait_showing(const struct bench_opts *o, bgsnap_engine *e)
{
	struct progress bar;
	uint64_t ps = (uint64_t)sysconf(_SC_PAGESIZE);
	progress_begin(&bar, o->progress, "snapshot", 0);
	struct waiter w = { .e = e };
	pthread_t th;
	if (!bar.shown || pthread_create(&th, NULL, waiter_main, &w) != 0) {
		progress_end(&bar);
		return bgsnap_wait(e);
	}
	struct bgsnap_stats st = { 0 };
	while (!atomic_load(&w.done)) {
		if (bgsnap_get_stats(e, &st, sizeof st) == 0) {
			bar.total = st.pages_total * ps;
			uint64_t raw = st.pages_saved * ps;
			if (o->compress != BGSNAP_COMPRESS_NONE && raw)
				progress_ratio(&bar, (double)st.bytes_written / (double)raw);
			progress_update(&bar, raw);
		}
		sleep_ms(50);
	}
	pthread_join(th, NULL);
	progress_end(&bar);
	return w.rc;
}

/* The snapshot itself, the writers running (and the noise process, if
 * any), then the host's recovery; stops both.  Returns the engine's
 * result. */
/* Starts e into the file res->path, or into the stream --out names (so:
 * its copy then becomes res->path); a failure to start the stream is
 * said in res->msg. */
static int start(const struct bench_opts *o, bgsnap_engine *e, struct stream_out *so, struct bench_result *res)
{
	if (o->out_kind == DEST_FILE)
		return bgsnap_start(e, res->path);
	struct dest d;
	dest_parse(o->out, &d, NULL, 0);
	int r = stream_out_open(so, o->out, &d, res->msg, sizeof(res->msg));
	if (r < 0)
		return r;
	snprintf(res->path, sizeof(res->path), "/proc/self/fd/%d", so->copy_fd);
	r = bgsnap_start_fd(e, so->pipe_w);
	if (r < 0) {
		stream_out_close(so, r, bgsnap_errmsg(e), res->msg, sizeof(res->msg));
		close(so->copy_fd);
		so->copy_fd = -1;
	}
	return r;
}

static int snapshot(const struct bench_opts *o, bgsnap_engine *e, wl *w, const struct hook_ctx *h, pid_t noise,
                    struct stream_out *so, struct bench_result *res, double tb, uint64_t sb)
{
	struct sampler sm;
	int r = sampler_start(&sm, w);
	if (r < 0)
		return r;
	struct host_cpu c0, c1;
	bool cpu = host_cpu_read(w, &c0) == 0;
	res->huge_before = wl_huge_pages(wl_mem(w), wl_mem_bytes(w));
	r = start(o, e, so, res);
	bool started = r == 0;
	if (started)
		r = wait_showing(o, e);
	if (started && o->out_kind != DEST_FILE)
		r = stream_out_close(so, r, bgsnap_errmsg(e), res->msg, sizeof(res->msg));
	res->huge_after = wl_huge_pages(wl_mem(w), wl_mem_bytes(w));
	cpu = cpu && host_cpu_read(w, &c1) == 0;
	noise_stop(noise);
	double tc = mono_s();
	if (cpu) {
		host_cpu_diff(&c0, &c1, &res->cpu);
		res->cpu_measured = true;
	}
	uint64_t sc = wl_total_steps(w);
	wl_timing_off(w);
	if (started && r == 0 && h->paused == 1 && o->after_ms && res->wps_before > 0)
		measure_loss(o, &sm, h, tc, o->after_ms / 1000.0, res);
	else
		sampler_stop(&sm);
	sampler_free(&sm);
	wl_stop(w);
	if (!started)
		return r;
	res->wps_during = tc > tb ? (double)(sc - sb) / (tc - tb) : 0;
	bgsnap_get_stats(e, &res->st, sizeof res->st);
	res->ran = res->st.method ? res->st.method : res->method;
	return r;
}

/* After a completed snapshot: latencies, memory, verification, restore. */
static void finish(const struct bench_opts *o, wl *w, wl_oracle *oracle, const struct hook_ctx *h,
                   struct bench_result *res)
{
	res->status = BENCH_ERROR;
	if (h->paused != 1) {
		snprintf(res->msg, sizeof(res->msg), "the pause hook ran %d times", h->paused);
		return;
	}
	if (wl_first_write_latency(w, &res->lat) < 0) {
		snprintf(res->msg, sizeof(res->msg), "out of memory");
		return;
	}
	res->extra_mem = res->st.extra_mem_peak;
	if (res->ran == BGSNAP_METHOD_FORK && res->extra_mem == 0) {
		res->extra_mem = res->lat.samples * WL_PAGE;
		res->extra_src = "estimate";
	}
	struct stat sb;
	if (stat(res->path, &sb) == 0)
		res->file_bytes = (uint64_t)sb.st_size;
	res->verified = bench_verify(bgsnap_method_name(res->ran), res->path, w, oracle, h->steps, o->corrupt,
	                             res->msg, sizeof(res->msg));
	/* The oracle now stands at the snapshot's step counts. */
	if (res->verified && o->restore)
		bench_restore(res->path, o->restore | (o->restore_uncached ? BENCH_RESTORE_UNCACHED : 0), o->memory, wl_mem_bytes(w), o->threads, oracle, &res->rr);
	if (!res->keep)
		unlink(res->path);
	res->status = BENCH_OK;
}

void bench_run_method(const struct bench_opts *o, wl *w, wl_oracle *oracle, int method, struct bench_result *res)
{
	memset(res, 0, sizeof(*res));
	res->method = res->ran = method;
	res->extra_src = "engine";
	snapshot_path(o, method, res->path, sizeof(res->path));
	/* For exec:'s command; set while this is the only thread (the
	 * writers start below), since setenv races any getenv. */
	if (o->out_kind == DEST_EXEC)
		setenv("BGSNAP_METHOD", bgsnap_method_name(method), 1);
	/* A stream's copy is unlinked already: nothing to remove. */
	res->keep = o->out != NULL;

	char why[256] = "";
	int r = bgsnap_method_probe(method, why, sizeof(why));
	if (r < 0) {
		failed(o, res, r, "%s", why);
		return;
	}
	struct hook_ctx h = { .w = w };
	bgsnap_engine *e = make_engine(o, method, &h, res);
	if (!e)
		return;
	double tb;
	uint64_t sb;
	if (writers_before(o, w, res, &tb, &sb) < 0) {
		bgsnap_destroy(e);
		return;
	}
	pid_t noise = 0;
	if (o->noise && (noise = noise_start(o->mem, o->thp)) < 0) {
		wl_timing_off(w);
		wl_stop(w);
		res->status = BENCH_ERROR;
		snprintf(res->msg, sizeof(res->msg), "cannot start the --noise process: %s", strerror((int)-noise));
		bgsnap_destroy(e);
		return;
	}
	struct stream_out so = { .copy_fd = -1 };
	r = snapshot(o, e, w, &h, noise, &so, res, tb, sb);
	if (r < 0 && res->msg[0]) {
		/* A stream's failure: its message names the destination. */
		res->status = BENCH_ERROR;
		bgsnap_destroy(e);
	} else if (r < 0) {
		engine_failed(o, res, r, e);
	} else {
		bgsnap_destroy(e);
		finish(o, w, oracle, &h, res);
	}
	if (so.copy_fd >= 0)
		close(so.copy_fd);
}
