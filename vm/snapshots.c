/*
 * snapshots.c - bgsnap-vm's snapshots: one bgsnap engine per snapshot over
 * region "ram", whose hooks park the vCPU, save the VM's state (state.c)
 * and release it; bgsnap_wait() runs in a waiter thread so that the main
 * thread keeps serving the control socket meanwhile.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/clock.h"
#include "runner.h"
#include "state.h"

const char *snap_state_name(const struct snap *s)
{
	static const char *const names[] = { "pending", "active", "completed", "failed", "skipped" };
	return names[s->state];
}

static int hook_pause(void *ctx)
{
	struct runner *r = ctx;
	/* A guest that already halted is parked for good: its state is final
	 * and can still be saved. */
	(void)vm_pause(&r->vm);
	/* The fork method's child must not inherit unwritten console bytes. */
	fflush(stdout);
	double t = mono_s();
	/* A second call (the engine finishing the snapshot paused, from its
	 * own thread) leaves the snapshot instant's figures alone, and the
	 * speed samples to the runner's thread. */
	if (r->cur && r->cur->t_parked)
		return 0;
	if (r->cur) {
		r->cur->t_parked = t;
		r->cur->console_offset = r->vm.console_bytes;
		r->cur->progress_at_pause = atomic_load(&r->vm.progress);
	}
	speed_sample(r, t);
	return 0;
}

static int hook_save_state(bgsnap_state *st, void *ctx)
{
	struct runner *r = ctx;
	return vm_state_save(st, &r->vm, r->guest_name);
}

static void hook_resume(void *ctx)
{
	struct runner *r = ctx;
	double t = mono_s();
	if (!r->cur || !r->cur->t_resumed) {
		if (r->cur)
			r->cur->t_resumed = t;
		speed_sample(r, t);
	}
	vm_resume(&r->vm);
}

static void engine_log(void *ctx, int level, const char *msg)
{
	struct runner *r = ctx;
	if (level <= BGSNAP_LOG_WARN || r->stats)
		cli_error("bgsnap: %s", msg);
}

/* Closing a pipe and reaping its command may take a moment: done here,
 * off the loop that serves the control socket. */
static void wait_engine(struct runner *r)
{
	int rc = bgsnap_wait(r->eng);
	r->wait_rc = dest_finish(r->eng, r->dest_spec, &r->dest, rc, r->dest_err, sizeof(r->dest_err));
	r->wait_t = mono_s();
	uint64_t one = 1;
	ssize_t n = write(r->snap_fd, &one, sizeof(one));
	(void)n; /* an eventfd write of 1 cannot fail short of overflow */
}

static void *waiter_main(void *arg)
{
	wait_engine(arg);
	return NULL;
}

static int start_failed(struct runner *r, struct snap *s, int rc, bgsnap_engine *e, const char *msg)
{
	const char *why = msg && msg[0] ? msg : e && bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-rc);
	/* A message longer than errmsg is cut: what it starts with says enough. */
	if (snprintf(s->errmsg, sizeof(s->errmsg), "%s%s", e ? "" : "cannot create the snapshot engine: ", why) < 0)
		s->errmsg[0] = '\0';
	s->state = SNAP_FAILED;
	s->error = rc;
	r->cur = NULL;
	/* The chain's engine stays: its next snapshot is a full one. */
	if (e != r->chain_eng)
		bgsnap_destroy(e);
	return rc;
}

/* The engine for snapshot s: a new one over region "ram", or, for a link
 * of the chain, the chain's (created with the first link).  0, or -errno
 * with *out set to the engine that failed (NULL: none was created). */
static int snapshot_engine(struct runner *r, const struct snap *s, bgsnap_engine **out)
{
	if (s->chain && r->chain_eng) {
		*out = r->chain_eng;
		return 0;
	}
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = s->method;
	o.compress = r->compress;
	o.compress_level = r->compress_level;
	o.page_aligned = r->page_aligned;
	o.max_bytes_per_s = r->max_rate;
	o.chain = s->chain;
	o.log = engine_log;
	o.log_ctx = r;
	*out = NULL;
	int rc = bgsnap_create(out, &o);
	if (rc < 0)
		return rc;
	struct bgsnap_hooks h = { .pause = hook_pause, .save_state = hook_save_state, .resume = hook_resume, .ctx = r };
	rc = bgsnap_add_region(*out, "ram", r->vm.ram, r->vm.ram_size);
	if (rc >= 0)
		rc = bgsnap_set_hooks(*out, &h);
	if (rc >= 0 && s->chain)
		r->chain_eng = *out;
	return rc < 0 ? rc : 0;
}

int snapshot_start(struct runner *r, struct snap *s)
{
	bgsnap_engine *e = NULL;
	struct dest d;
	r->dest_err[0] = '\0';
	int rc = dest_parse(s->path, &d, s->errmsg, sizeof(s->errmsg));
	if (rc < 0) {
		s->state = SNAP_FAILED;
		s->error = rc;
		return rc;
	}
	rc = snapshot_engine(r, s, &e);
	if (rc >= 0) {
		r->cur = s;
		s->t_call = mono_s();
		rc = dest_start(e, s->path, &d, &r->dest, r->dest_err, sizeof(r->dest_err));
	}
	if (rc < 0)
		return start_failed(r, s, rc, e, r->dest_err);
	r->dest_spec = s->path;
	s->state = SNAP_ACTIVE;
	progress_begin(&r->bar, r->progress_mode, "snapshot", r->vm.ram_size);
	r->eng = e;
	r->last = s;
	if (pthread_create(&r->waiter, NULL, waiter_main, r)) {
		/* Cannot wait in the background: wait here. */
		wait_engine(r);
		r->waiter = pthread_self();
	}
	return 0;
}

void snapshot_poll(struct runner *r, bool block)
{
	struct snap *s = r->cur;
	if (!s)
		return;
	uint64_t v;
	if (!block) {
		struct pollfd pf = { .fd = r->snap_fd, .events = POLLIN };
		if (poll(&pf, 1, 0) <= 0)
			return;
	}
	if (read(r->snap_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		cli_error("eventfd read: %s", strerror(errno));
	if (!pthread_equal(r->waiter, pthread_self()))
		pthread_join(r->waiter, NULL);
	int rc = r->wait_rc;
	progress_end(&r->bar);
	bgsnap_get_stats(r->eng, &s->stats, sizeof s->stats);
	s->t_done = r->wait_t;
	if (rc < 0) {
		s->state = SNAP_FAILED;
		s->error = rc;
		snprintf(s->errmsg, sizeof(s->errmsg), "%s", r->dest_err[0] ? r->dest_err : strerror(-rc));
		cli_error("snapshot %s failed: %s", s->path, s->errmsg);
		r->failures++;
	} else {
		s->state = SNAP_DONE;
	}
	if (r->eng != r->chain_eng)
		bgsnap_destroy(r->eng);
	r->eng = NULL;
	r->cur = NULL;
}

void snapshot_progress(struct runner *r)
{
	struct bgsnap_stats st;
	if (!r->cur || !r->eng || !r->bar.shown || bgsnap_get_stats(r->eng, &st, sizeof st) < 0)
		return;
	uint64_t raw = st.pages_saved * 4096u;
	r->bar.total = st.pages_total * 4096u;
	if (r->compress != BGSNAP_COMPRESS_NONE && raw)
		progress_ratio(&r->bar, (double)st.bytes_written / (double)raw);
	progress_update(&r->bar, raw);
}

/* A pointer into the list, after entry `gone` was removed from it. */
static struct snap *moved_down(struct snap *p, const struct snap *gone)
{
	return p && p > gone ? p - 1 : p;
}

/* Forgets the oldest finished snapshot (not the one query-snapshot
 * reports); false if every entry is pending or running. */
static bool forget_oldest(struct runner *r)
{
	for (size_t i = 0; i < r->nsnaps; i++) {
		struct snap *s = &r->snaps[i];
		if (s->state == SNAP_PENDING || s->state == SNAP_ACTIVE || s == r->last)
			continue;
		free(s->path);
		memmove(s, s + 1, (r->nsnaps - i - 1) * sizeof(*s));
		r->nsnaps--;
		r->cur = moved_down(r->cur, s);
		r->last = moved_down(r->last, s);
		return true;
	}
	return false;
}

struct snap *snap_add(struct runner *r, const char *path, int method, uint64_t at_ms)
{
	/* Each control-socket snapshot adds an entry: keep the list bounded. */
	if (r->nsnaps >= MAX_SNAPSHOTS && !forget_oldest(r)) {
		errno = ENOSPC;
		return NULL;
	}
	if (r->nsnaps == r->capsnaps) {
		size_t nc = r->capsnaps ? r->capsnaps * 2 : 8;
		struct snap *ns = realloc(r->snaps, nc * sizeof(*ns));
		if (!ns) {
			errno = ENOMEM;
			return NULL;
		}
		/* Pointers into the array move with it. */
		if (r->cur)
			r->cur = ns + (r->cur - r->snaps);
		if (r->last)
			r->last = ns + (r->last - r->snaps);
		r->snaps = ns;
		r->capsnaps = nc;
	}
	struct snap *s = &r->snaps[r->nsnaps];
	memset(s, 0, sizeof(*s));
	s->path = strdup(path);
	s->method = method;
	s->at_ms = at_ms;
	if (!s->path) {
		errno = ENOMEM;
		return NULL;
	}
	r->nsnaps++;
	return s;
}

static bool scheduled(const struct snap *s)
{
	return s->state == SNAP_PENDING && s->at_ms != AT_CONTROL;
}

/* The next link of the --snapshot-every chain, if due at `now`: started
 * (0), else when it is due.  A link that comes due while another snapshot
 * runs starts once that one completes; a guest that ended takes no more. */
static double chain_schedule(struct runner *r, double now, bool finished)
{
	if (!r->every_ms || finished)
		return -1;
	double due = r->t0 + (double)r->every_next_ms / 1e3;
	if (due > now)
		return due;
	char path[4096];
	/* file: so that a ':' in DIR is never taken for a scheme. */
	if (snprintf(path, sizeof(path), "file:%s/snap-%04u.bgsnap", r->every_dir, r->every_count + 1) >=
	    (int)sizeof(path)) {
		cli_error("--snapshot-every: directory name too long: %s", r->every_dir);
		r->failures++;
		r->every_ms = 0;
		return -1;
	}
	struct snap *s = snap_add(r, path, r->method, r->every_next_ms);
	if (!s) {
		cli_error("snapshot %s not taken: %s", path, errno == ENOSPC ? "too many snapshots pending" : strerror(errno));
		r->failures++;
		r->every_ms = 0;
		return -1;
	}
	s->chain = true;
	r->every_count++;
	r->every_next_ms += r->every_ms;
	if (snapshot_start(r, s) < 0) {
		cli_error("snapshot %s failed: %s", s->path, s->errmsg);
		r->failures++;
	}
	return 0;
}

double snapshot_schedule(struct runner *r, double now, bool finished)
{
	double next_due = chain_schedule(r, now, finished);
	if (next_due == 0)
		return 0;
	for (size_t i = 0; i < r->nsnaps; i++) {
		struct snap *s = &r->snaps[i];
		if (!scheduled(s))
			continue;
		double due = r->t0 + (double)s->at_ms / 1e3;
		if (finished) {
			s->state = SNAP_SKIPPED;
			cli_error("snapshot %s at %llu ms not taken: the guest ended after %.0f ms", s->path,
			          (unsigned long long)s->at_ms, (r->t_end - r->t0) * 1e3);
			r->failures++;
			continue;
		}
		if (due <= now) {
			if (snapshot_start(r, s) < 0) {
				cli_error("snapshot %s failed: %s", s->path, s->errmsg);
				r->failures++;
			}
			return 0;
		}
		if (next_due < 0 || due < next_due)
			next_due = due;
	}
	return next_due;
}

bool snapshot_pending(const struct runner *r)
{
	for (size_t i = 0; i < r->nsnaps; i++)
		if (scheduled(&r->snaps[i]))
			return true;
	return false;
}
