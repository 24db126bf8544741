/*
 * track_finish.c - finishing a snapshot paused when the host loses more to
 * its faults than a stop would cost it (BGSNAP_PARAM_FINISH_PAUSED).
 *
 * A host that writes nearly every page meets the writer's frontier on
 * almost every write: each first write to an unsaved page costs it a fault
 * (tens of microseconds on a paravirtualised machine, hundreds with the
 * scheduling around it), while the writer saves a page in a few.  With a
 * bounded copy buffer nothing can be saved ahead of the sweep, so such a
 * host runs at almost nothing until the sweep has passed, and loses more
 * than if it had been stopped (docs/MEASUREMENTS.md, "Host work lost").
 *
 * So the writer weighs, every FINISH_WINDOW_MS, the two ways to save the
 * `rem` pages left, in host thread-time:
 *   go on:  rem x s_bg x (fault wait per second of the window)
 *   stop:   rem x s_stop x (host threads seen faulting, at least 1)
 * s_bg is the writer's wall time per page in the window; s_stop what a page
 * would take with the host stopped: the same minus the time the writer
 * waited for a CPU (its run-queue time, /proc/thread-self/schedstat), which
 * the stopped host gives back.  Stopping wins when go-on x 100 exceeds
 * param x stop in FINISH_WINDOWS windows in a row: the writer then removes
 * the protection it owes, calls the pause hook from a helper thread while
 * it goes on draining fault copies (a host thread blocked in a fault, uffd
 * or a signal handler waiting for buffer space, must get out of it before
 * it can park), and with the host parked writes the rest with no fault
 * possible; it removes all protection at once and calls the resume hook.
 */
#include "engine/incr.h"
#include "engine/track.h"
#include "util/clock.h"
#include "util/thread.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FINISH_WINDOW_MS 50u
#define FINISH_WINDOWS 2u         /* in a row: one slow window is noise */
#define FINISH_MIN_PAGES 1024u    /* 4 MiB left: not worth a pause */
/* What a finishing pause costs besides its pages: the hooks and one
 * unprotect call per region (0.4-0.6 ms per GiB measured here). */
#define FINISH_FIXED_NS 2000000u

/* The calling thread's time spent waiting for a CPU, in ns; 0 if
 * schedstat cannot be read (stopping then looks no cheaper than going on
 * but for the host's fault waits). */
static uint64_t runq_ns(void)
{
	char buf[96];
	int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	unsigned long long c, q;
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return sscanf(buf, "%llu %llu", &c, &q) == 2 ? q : 0;
}

static void window_start(struct track *t, uint64_t now)
{
	struct track_finish *f = &t->fin;
	f->win_runq0 = runq_ns();
	unsigned n = atomic_load(&t->host_ntids);
	if (n > atomic_load(&t->e->live->fault_threads_max))
		atomic_store(&t->e->live->fault_threads_max, n);
	f->win_t0 = now;
	f->win_wait0 = atomic_load(&t->host_wait_ns);
	f->win_pages0 = t->e->fw.pages_written;
	for (unsigned i = 0; i < TRACK_TIDS; i++)
		atomic_store_explicit(&t->host_tids[i], 0, memory_order_relaxed);
	atomic_store(&t->host_ntids, 0);
}

/* 1 if stopping the host for the rest is expected to cost it less. */
static int stop_wins(struct track *t, uint64_t now)
{
	struct bgsnap_engine *e = t->e;
	struct track_finish *f = &t->fin;
	uint64_t runq = runq_ns();
	uint64_t dt = now - f->win_t0;
	uint64_t pages = e->fw.pages_written - f->win_pages0;
	uint64_t wait = atomic_load(&t->host_wait_ns) - f->win_wait0;
	unsigned threads = atomic_load(&t->host_ntids);
	uint64_t q = runq - f->win_runq0;
	uint64_t due = incr_pages_due(e), done = e->fw.pages_written;
	if (pages == 0 || done + FINISH_MIN_PAGES > due)
		return 0;
	double rem = (double)(due - done);
	double s_bg = (double)dt / (double)pages;
	double s_stop = (double)(dt > q ? dt - q : 0) / (double)pages;
	double go_on = rem * s_bg * ((double)wait / (double)dt);
	double stop = (threads ? threads : 1) * (rem * s_stop + FINISH_FIXED_NS);
	return go_on * 100.0 > (double)e->finish_paused * stop;
}

static void *pause_main(void *arg)
{
	struct track *t = arg;
	struct bgsnap_engine *e = t->e;
	/* A pause hook may write the regions (the first one's writes are in
	 * the snapshot): with the signal methods that write faults into our
	 * handler, which a blocked SIGSEGV or SIGBUS would turn into the
	 * process's death. */
	sigset_t sync;
	sigemptyset(&sync);
	sigaddset(&sync, SIGSEGV);
	sigaddset(&sync, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &sync, NULL);
	t->fin.hook_rc = e->hooks.pause(e->hooks.ctx);
	atomic_store(&t->fin.hook_done, 1);
	return NULL;
}

/* Calls the pause hook and keeps the fault path served until it returns. */
static int finish_pause(struct track *t, uint32_t ri, uint64_t *win, uint64_t end)
{
	struct bgsnap_engine *e = t->e;
	struct track_finish *f = &t->fin;
	/* No thread may wait on a page the writer saved and still protects. */
	int r = track_flush_window(t, ri, *win, end);
	if (r)
		return r;
	*win = end;
	atomic_store(&t->flush_req, 0);
	f->t_pause = now_ns();
	atomic_store(&f->hook_done, 0);
	r = thread_start(&f->hook_thread, "bgsnap-pause", pause_main, t);
	if (r) {
		f->refused = 1;   /* go on in the background */
		return 0;
	}
	while (!atomic_load(&f->hook_done) && !r) {
		r = track_drain_copies(t, 1);
		/* A closed copy buffer returns at once. */
		if (engine_cancelled(e)) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	if (r) {
		/* Nothing drains any more: let the threads waiting for buffer
		 * space go, or the hook would wait for them forever. */
		atomic_store(&e->cancel_requested, 1);
		copybuf_close(&t->cb);
	}
	pthread_join(f->hook_thread, NULL);
	atomic_store(&e->live->finish_hook_us, us_since(f->t_pause));
	if (f->hook_rc != 0) {
		f->refused = 1;
		return r;
	}
	/* From here on every way out resumes (track_finish_resume). */
	f->paused = 1;
	f->pages_at_pause = e->fw.pages_written;
	atomic_store(&e->live->finished_paused, 1);
	/* The copies made before the host parked are drained with the
	 * sweep's batches and by the writer's last loop. */
	return r;
}

int track_finish_check(struct track *t, uint32_t ri, uint64_t *win, uint64_t end)
{
	struct bgsnap_engine *e = t->e;
	struct track_finish *f = &t->fin;
	/* A rate limit says the file's writes must not go faster, which a
	 * pause (never paced) would do; a paced pause would be a long one.  A
	 * chain kept by this method's own write-protect (t->keep) needs the
	 * saved pages to stay protected, which the finish's one unprotect of
	 * everything would undo: the host's next writes would go unseen. */
	int able = e->finish_paused && !f->refused && e->hooks.pause && !e->opts.max_bytes_per_s && !t->keep;
	if (f->paused)
		return 0;
	if (able && e->finish_paused < 0)
		return e->fw.pages_written >= incr_pages_due(e) / 4 ? finish_pause(t, ri, win, end) : 0;
	/* The windows run whatever the parameter, for the statistics. */
	uint64_t now = now_ns();
	if (!f->win_t0) {
		window_start(t, now);
		return 0;
	}
	if (now - f->win_t0 < FINISH_WINDOW_MS * 1000000ull)
		return 0;
	f->heavy = able && stop_wins(t, now) ? f->heavy + 1 : 0;
	window_start(t, now);
	if (f->heavy < FINISH_WINDOWS)
		return 0;
	return finish_pause(t, ri, win, end);
}

void track_finish_resume(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct track_finish *f = &t->fin;
	if (!f->paused)
		return;
	f->paused = 0;
	atomic_store(&e->live->finish_pages, e->fw.pages_written - f->pages_at_pause);
	if (e->hooks.resume)
		e->hooks.resume(e->hooks.ctx);
	atomic_store(&e->live->finish_pause_us, us_since(f->t_pause));
}
