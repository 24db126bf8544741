/*
 * main.c - bgsnap-vm: runs a guest on the reference VM and snapshots it
 * live with bgsnap (`run`), continues a snapshotted guest (`restore`), and
 * lists the built-in guests (`guests`).
 *
 * One host thread (this one) drives everything but the vCPU: the snapshot
 * schedule, the control socket, the bgsnap engine (one per snapshot; the
 * engine's pause/resume hooks park and release the vCPU) and the guest-speed
 * samples.  Snapshot state blobs: "cpu" (registers by name), "console"
 * (bytes the guest printed before the pause) and "machine" (RAM size, guest
 * progress, guest name).  Exit codes: 0 success, 1 failure, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bgsnap.h"
#include "vm.h"
#include "../tools/size.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_RAM (128u << 20)
#define MAX_CLIENTS 8
#define LINE_MAX_ 8192
#define SPEED_WINDOW 1.0 /* seconds of guest speed measured before and after */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the run ------------------------------------------------------------ */

struct sample {
	double t;
	uint64_t progress;
};

struct snap {
	char *path;
	int method;
	uint64_t at_ms;              /* scheduled time, or UINT64_MAX (control) */
	int state;                   /* 0 pending, 1 running, 2 done, 3 failed, 4 skipped */
	int error;
	char errmsg[256];
	double t_call;               /* bgsnap_start called                    */
	double t_parked;             /* vCPU parked (pause hook)               */
	double t_resumed;            /* vCPU released (resume hook)            */
	double t_done;               /* committed                              */
	uint64_t console_offset;     /* console bytes before the pause         */
	uint64_t progress_at_pause;
	struct bgsnap_stats stats;
};

struct client {
	int fd;
	char buf[LINE_MAX_];
	size_t len;
	bool overflow;               /* discarding an over-long line           */
};

struct runner {
	struct vm vm;
	const char *guest_name;
	int method;
	bool stats;
	bool quiet_notes;

	struct snap *snaps;
	size_t nsnaps, capsnaps;
	struct snap *cur;            /* running snapshot, or NULL              */
	bgsnap_engine *eng;
	struct snap *last;           /* last started snapshot (query-snapshot) */
	bgsnap_lazy *lazy;           /* lazy restore in progress, or NULL      */
	bgsnap_reader *lazy_reader;  /* borrowed by it                         */
	/* bgsnap_wait() runs in a waiter thread so that this thread keeps
	 * serving the control socket; it signals snap_fd when it returns. */
	pthread_t waiter;
	int snap_fd;
	int wait_rc;
	double wait_t;

	double t0;                   /* guest (re)started                      */
	double t_end;                /* guest finished                         */
	struct sample *samples;
	size_t nsamples, capsamples;

	const char *control_path;
	int listen_fd;
	struct client clients[MAX_CLIENTS];
	bool user_stopped;
	bool quit;
	int failures;
};

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("bgsnap-vm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void add_sample(struct runner *r, double t, uint64_t p)
{
	if (r->nsamples == r->capsamples) {
		size_t nc = r->capsamples ? r->capsamples * 2 : 4096;
		struct sample *ns = realloc(r->samples, nc * sizeof(*ns));
		if (!ns)
			return; /* speed figures get coarser, nothing else */
		r->samples = ns;
		r->capsamples = nc;
	}
	r->samples[r->nsamples++] = (struct sample){t, p};
}

static void sample_now(struct runner *r)
{
	add_sample(r, now_s(), atomic_load_explicit(&r->vm.progress, memory_order_relaxed));
}

/* Guest progress at time t, interpolated between samples. */
static double progress_at(const struct runner *r, double t)
{
	if (r->nsamples == 0)
		return 0;
	if (t <= r->samples[0].t)
		return (double)r->samples[0].progress;
	size_t lo = 0, hi = r->nsamples - 1;
	if (t >= r->samples[hi].t)
		return (double)r->samples[hi].progress;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (r->samples[mid].t <= t)
			lo = mid;
		else
			hi = mid;
	}
	const struct sample *a = &r->samples[lo], *b = &r->samples[hi];
	if (b->t <= a->t)
		return (double)b->progress;
	return (double)a->progress + ((double)b->progress - (double)a->progress) * (t - a->t) / (b->t - a->t);
}

/* Guest speed (units/s) over [a, b]; negative when the window is empty. */
static double speed(const struct runner *r, double a, double b)
{
	if (b - a < 1e-4)
		return -1;
	return (progress_at(r, b) - progress_at(r, a)) / (b - a);
}

/* ---- hooks ---- */

static int hook_pause(void *ctx)
{
	struct runner *r = ctx;
	/* A guest that already halted is parked for good: its state is final
	 * and can still be saved. */
	(void)vm_pause(&r->vm);
	/* The fork method's child must not inherit unwritten console bytes. */
	fflush(stdout);
	double t = now_s();
	if (r->cur) {
		r->cur->t_parked = t;
		r->cur->console_offset = r->vm.console_bytes;
		r->cur->progress_at_pause = atomic_load(&r->vm.progress);
	}
	add_sample(r, t, atomic_load(&r->vm.progress));
	return 0;
}

static int hook_save_state(bgsnap_state *st, void *ctx)
{
	struct runner *r = ctx;
	char buf[4096];
	int n = vm_save_cpu(&r->vm, buf, sizeof(buf));
	if (n < 0)
		return n;
	int e = bgsnap_state_add(st, "cpu", buf, (size_t)n);
	if (e < 0)
		return e;
	n = snprintf(buf, sizeof(buf), "bgsnap-vm console 1\nbytes=0x%" PRIx64 "\n", r->vm.console_bytes);
	e = bgsnap_state_add(st, "console", buf, (size_t)n);
	if (e < 0)
		return e;
	n = snprintf(buf, sizeof(buf), "bgsnap-vm machine 1\nram_size=0x%zx\nprogress=0x%" PRIx64 "\nhalted=%d\nguest=%s\n",
	             r->vm.ram_size, (uint64_t)atomic_load(&r->vm.progress), r->vm.halted ? 1 : 0, r->guest_name);
	return bgsnap_state_add(st, "machine", buf, (size_t)n);
}

static void hook_resume(void *ctx)
{
	struct runner *r = ctx;
	double t = now_s();
	if (r->cur)
		r->cur->t_resumed = t;
	add_sample(r, t, atomic_load(&r->vm.progress));
	vm_resume(&r->vm);
}

static void engine_log(void *ctx, int level, const char *msg)
{
	struct runner *r = ctx;
	if (level <= BGSNAP_LOG_WARN || r->stats)
		note("bgsnap: %s", msg);
}

static void *waiter_main(void *arg)
{
	struct runner *r = arg;
	r->wait_rc = bgsnap_wait(r->eng);
	r->wait_t = now_s();
	uint64_t one = 1;
	ssize_t n = write(r->snap_fd, &one, sizeof(one));
	(void)n; /* an eventfd write of 1 cannot fail short of overflow */
	return NULL;
}

/* Starts snapshot s; on failure fills s->errmsg and returns -errno. */
static int snapshot_start(struct runner *r, struct snap *s)
{
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = s->method;
	o.log = engine_log;
	o.log_ctx = r;
	bgsnap_engine *e = NULL;
	int rc = bgsnap_create(&e, &o);
	if (rc < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "cannot create the snapshot engine: %s", strerror(-rc));
		s->state = 3;
		s->error = rc;
		return rc;
	}
	rc = bgsnap_add_region(e, "ram", r->vm.ram, r->vm.ram_size);
	if (rc >= 0) {
		struct bgsnap_hooks h = {.pause = hook_pause, .save_state = hook_save_state, .resume = hook_resume, .ctx = r};
		rc = bgsnap_set_hooks(e, &h);
	}
	if (rc >= 0) {
		r->cur = s;
		s->t_call = now_s();
		rc = bgsnap_start(e, s->path);
	}
	if (rc < 0) {
		snprintf(s->errmsg, sizeof(s->errmsg), "%s", bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-rc));
		s->state = 3;
		s->error = rc;
		r->cur = NULL;
		bgsnap_destroy(e);
		return rc;
	}
	s->state = 1;
	r->eng = e;
	r->last = s;
	int te = pthread_create(&r->waiter, NULL, waiter_main, r);
	if (te) {
		/* Cannot wait in the background: wait here. */
		r->wait_rc = bgsnap_wait(e);
		r->wait_t = now_s();
		uint64_t one = 1;
		ssize_t n = write(r->snap_fd, &one, sizeof(one));
		(void)n;
		r->waiter = pthread_self();
	}
	return 0;
}

/* Finishes the running snapshot once bgsnap_wait() returned in the waiter
 * thread (block: wait for that). */
static void snapshot_poll(struct runner *r, bool block)
{
	struct snap *s = r->cur;
	if (!s)
		return;
	uint64_t v;
	if (!block) {
		struct pollfd pf = {.fd = r->snap_fd, .events = POLLIN};
		if (poll(&pf, 1, 0) <= 0)
			return;
	}
	if (read(r->snap_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		note("eventfd read: %s", strerror(errno));
	if (!pthread_equal(r->waiter, pthread_self()))
		pthread_join(r->waiter, NULL);
	int rc = r->wait_rc;
	bgsnap_get_stats(r->eng, &s->stats, sizeof s->stats);
	s->t_done = r->wait_t;
	if (rc < 0) {
		s->state = 3;
		s->error = rc;
		snprintf(s->errmsg, sizeof(s->errmsg), "%s", bgsnap_errmsg(r->eng)[0] ? bgsnap_errmsg(r->eng) : strerror(-rc));
		note("snapshot %s failed: %s", s->path, s->errmsg);
		r->failures++;
	} else {
		s->state = 2;
	}
	bgsnap_destroy(r->eng);
	r->eng = NULL;
	r->cur = NULL;
}

static struct snap *snap_add(struct runner *r, const char *path, int method, uint64_t at_ms)
{
	if (r->nsnaps == r->capsnaps) {
		size_t nc = r->capsnaps ? r->capsnaps * 2 : 8;
		struct snap *ns = realloc(r->snaps, nc * sizeof(*ns));
		if (!ns)
			return NULL;
		/* Pointers into the array move with it. */
		if (r->cur)
			r->cur = ns + (r->cur - r->snaps);
		if (r->last)
			r->last = ns + (r->last - r->snaps);
		r->snaps = ns;
		r->capsnaps = nc;
	}
	struct snap *s = &r->snaps[r->nsnaps++];
	memset(s, 0, sizeof(*s));
	s->path = strdup(path);
	s->method = method;
	s->at_ms = at_ms;
	if (!s->path) {
		r->nsnaps--;
		return NULL;
	}
	return s;
}

/* ---- control socket ---- */

static const char *state_name(const struct snap *s)
{
	static const char *names[] = {"pending", "active", "completed", "failed", "skipped"};
	return names[s->state];
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->overflow = false;
}

static void client_send(struct client *c, const char *msg)
{
	size_t len = strlen(msg), off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, msg + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			client_close(c);
			return;
		}
		off += (size_t)n;
	}
}

static void reply_error(struct client *c, const struct json_cmd *cmd, const char *cls, const char *desc)
{
	char buf[1024];
	size_t pos = (size_t)snprintf(buf, sizeof(buf), "{\"error\":{\"class\":");
	pos = json_put_str(buf, sizeof(buf), pos, cls);
	pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, ",\"desc\":");
	pos = json_put_str(buf, sizeof(buf), pos, desc);
	if (cmd && cmd->id[0])
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "},\"id\":%s}\n", cmd->id);
	else
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "}}\n");
	if (pos >= sizeof(buf))
		snprintf(buf, sizeof(buf), "{\"error\":{\"class\":\"GenericError\",\"desc\":\"reply too long\"}}\n");
	client_send(c, buf);
}

/* `body` is the JSON object to return ("{...}"). */
static void reply_return(struct client *c, const struct json_cmd *cmd, const char *body)
{
	char buf[8192];
	int n;
	if (cmd->id[0])
		n = snprintf(buf, sizeof(buf), "{\"return\":%s,\"id\":%s}\n", body, cmd->id);
	else
		n = snprintf(buf, sizeof(buf), "{\"return\":%s}\n", body);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		reply_error(c, cmd, "GenericError", "reply too long");
		return;
	}
	client_send(c, buf);
}

static void snap_json(const struct runner *r, const struct snap *s, char *buf, size_t cap)
{
	struct bgsnap_stats st = s->stats;
	if (s->state == 1 && r->eng)
		bgsnap_get_stats(r->eng, &st, sizeof st);
	size_t pos = (size_t)snprintf(buf, cap, "{\"status\":\"%s\",\"path\":", state_name(s));
	pos = json_put_str(buf, cap, pos, s->path);
	const char *mname = bgsnap_method_name(s->state >= 1 && st.method ? st.method : s->method);
	pos += (size_t)snprintf(buf + pos, cap - pos,
	                        ",\"method\":\"%s\",\"pages_total\":%" PRIu64 ",\"pages_saved\":%" PRIu64
	                        ",\"pages_zero\":%" PRIu64 ",\"pages_faulted\":%" PRIu64
	                        ",\"bytes_written\":%" PRIu64 ",\"pause_us\":%" PRIu64 ",\"wp_us\":%" PRIu64
	                        ",\"prewp_us\":%" PRIu64 ",\"reprotect_pages\":%" PRIu64
	                        ",\"total_us\":%" PRIu64 ",\"console_offset\":%" PRIu64,
	                        mname ? mname : "?", st.pages_total, st.pages_saved, st.pages_zero, st.pages_faulted,
	                        st.bytes_written, st.pause_us, st.wp_us, st.prewp_us, st.reprotect_pages, st.total_us,
	                        s->console_offset);
	if (pos < cap && s->state == 3) {
		pos += (size_t)snprintf(buf + pos, cap - pos, ",\"error\":");
		pos = json_put_str(buf, cap, pos, s->errmsg);
	}
	if (pos < cap - 1)
		snprintf(buf + pos, cap - pos, "}");
}

static void handle_command(struct runner *r, struct client *c, const char *line, size_t len)
{
	struct json_cmd cmd;
	char err[256];
	if (json_parse_cmd(line, len, &cmd, err, sizeof(err)) < 0) {
		reply_error(c, NULL, "GenericError", err);
		return;
	}
	char body[4096];
	if (!strcmp(cmd.execute, "qmp_capabilities")) {
		reply_return(c, &cmd, "{}");
	} else if (!strcmp(cmd.execute, "snapshot")) {
		if (!cmd.has_path || !cmd.path[0]) {
			reply_error(c, &cmd, "GenericError", "snapshot needs arguments.path");
			return;
		}
		int method = r->method;
		if (cmd.has_method) {
			method = bgsnap_method_parse(cmd.method);
			if (method < 0) {
				reply_error(c, &cmd, "GenericError", "unknown method");
				return;
			}
		}
		if (r->cur) {
			reply_error(c, &cmd, "GenericError", "a snapshot is already running");
			return;
		}
		if (vm_finished(&r->vm)) {
			reply_error(c, &cmd, "GenericError", "the guest has ended");
			return;
		}
		if (r->lazy) {
			reply_error(c, &cmd, "GenericError", "a lazy restore is still filling guest RAM; retry later");
			return;
		}
		struct snap *s = snap_add(r, cmd.path, method, UINT64_MAX);
		if (!s) {
			reply_error(c, &cmd, "GenericError", "out of memory");
			return;
		}
		if (snapshot_start(r, s) < 0) {
			r->last = s;
			reply_error(c, &cmd, "GenericError", s->errmsg);
			return;
		}
		struct bgsnap_stats st;
		bgsnap_get_stats(r->eng, &st, sizeof st);
		snprintf(body, sizeof(body), "{\"method\":\"%s\",\"pause_us\":%" PRIu64 ",\"console_offset\":%" PRIu64 "}",
		         bgsnap_method_name(st.method) ? bgsnap_method_name(st.method) : "?", st.pause_us,
		         s->console_offset);
		reply_return(c, &cmd, body);
	} else if (!strcmp(cmd.execute, "query-snapshot")) {
		if (!r->last) {
			reply_return(c, &cmd, "{\"status\":\"none\"}");
			return;
		}
		snap_json(r, r->last, body, sizeof(body));
		reply_return(c, &cmd, body);
	} else if (!strcmp(cmd.execute, "query-status")) {
		const char *st = vm_finished(&r->vm) ? "halted" : r->user_stopped ? "paused" : "running";
		snprintf(body, sizeof(body),
		         "{\"status\":\"%s\",\"running\":%s,\"console_bytes\":%" PRIu64 ",\"progress\":%" PRIu64 "}", st,
		         strcmp(st, "running") ? "false" : "true", r->user_stopped ? r->vm.console_bytes : 0,
		         (uint64_t)atomic_load(&r->vm.progress));
		reply_return(c, &cmd, body);
	} else if (!strcmp(cmd.execute, "stop")) {
		if (!r->user_stopped) {
			vm_pause(&r->vm);
			r->user_stopped = true;
		}
		reply_return(c, &cmd, "{}");
	} else if (!strcmp(cmd.execute, "cont")) {
		if (r->user_stopped) {
			r->user_stopped = false;
			vm_resume(&r->vm);
		}
		reply_return(c, &cmd, "{}");
	} else if (!strcmp(cmd.execute, "quit")) {
		reply_return(c, &cmd, "{}");
		r->quit = true;
	} else {
		snprintf(err, sizeof(err), "The command %.60s has not been found", cmd.execute);
		reply_error(c, &cmd, "CommandNotFound", err);
	}
}

static void client_readable(struct runner *r, struct client *c)
{
	char tmp[4096];
	ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	for (ssize_t i = 0; i < n && c->fd >= 0; i++) {
		char ch = tmp[i];
		if (ch == '\n') {
			if (c->overflow) {
				reply_error(c, NULL, "GenericError", "line too long");
			} else if (c->len > 0) {
				handle_command(r, c, c->buf, c->len);
			}
			c->len = 0;
			c->overflow = false;
		} else if (c->len < sizeof(c->buf)) {
			c->buf[c->len++] = ch;
		} else {
			c->overflow = true;
		}
	}
}

static int control_open(struct runner *r)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(r->control_path) >= sizeof(sa.sun_path)) {
		note("control socket path too long: %s", r->control_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, r->control_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		note("socket: %s", strerror(errno));
		return -errno;
	}
	/* A stale socket from an earlier run would make bind fail. */
	struct stat stt;
	if (lstat(r->control_path, &stt) == 0 && S_ISSOCK(stt.st_mode))
		unlink(r->control_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		int e = errno;
		note("cannot listen on %s: %s", r->control_path, strerror(e));
		close(fd);
		return -e;
	}
	r->listen_fd = fd;
	return 0;
}

static void control_accept(struct runner *r)
{
	int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (r->clients[i].fd < 0) {
			r->clients[i].fd = fd;
			r->clients[i].len = 0;
			r->clients[i].overflow = false;
			char greet[256];
			snprintf(greet, sizeof(greet),
			         "{\"QMP\":{\"version\":{\"package\":\"bgsnap-vm %s\"},\"capabilities\":[]}}\n",
			         bgsnap_version());
			client_send(&r->clients[i], greet);
			return;
		}
	}
	const char *busy = "{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many clients\"}}\n";
	ssize_t w = send(fd, busy, strlen(busy), MSG_NOSIGNAL);
	(void)w;
	close(fd);
}

/* ---- report ---- */

static void report(struct runner *r)
{
	double run_s = r->t_end - r->t0;
	note("guest ran %.3f s, printed %" PRIu64 " console bytes, %" PRIu64 " progress units (%.3g/s)", run_s,
	     r->vm.console_bytes, (uint64_t)atomic_load(&r->vm.progress),
	     run_s > 0 ? speed(r, r->t0, r->t_end) : 0.0);
	for (size_t i = 0; i < r->nsnaps; i++) {
		struct snap *s = &r->snaps[i];
		if (s->state != 2 && s->state != 3)
			continue;
		const struct bgsnap_stats *st = &s->stats;
		note("snapshot %zu: path=%s method=%s result=%s console_offset=%" PRIu64 " pause_us=%" PRIu64
		     " vcpu_stopped_us=%.0f wp_us=%" PRIu64 " prewp_us=%" PRIu64 " reprotect_pages=%" PRIu64
		     " total_ms=%.1f pages=%" PRIu64 " zero=%" PRIu64
		     " faulted=%" PRIu64 " unprotect_calls=%" PRIu64 " unprotect_ms=%.1f bytes=%" PRIu64
		     " extra_mem_peak=%" PRIu64,
		     i + 1, s->path, bgsnap_method_name(st->method) ? bgsnap_method_name(st->method) : "?",
		     s->state == 2 ? "ok" : "failed", s->console_offset, st->pause_us,
		     (s->t_resumed - s->t_parked) * 1e6, st->wp_us, st->prewp_us, st->reprotect_pages,
		     (double)st->total_us / 1e3, st->pages_total,
		     st->pages_zero, st->pages_faulted, st->unprotect_calls, (double)st->unprotect_us / 1e3,
		     st->bytes_written, st->extra_mem_peak);
		if (s->state != 2)
			continue;
		double bs = s->t_parked - SPEED_WINDOW, be = s->t_parked;
		if (bs < r->t0)
			bs = r->t0;
		double as = s->t_done, ae = s->t_done + SPEED_WINDOW;
		if (ae > r->t_end)
			ae = r->t_end;
		double before = speed(r, bs, be), during = speed(r, s->t_resumed, s->t_done), after = speed(r, as, ae);
		char pd[32] = "n/a", pa[32] = "n/a";
		if (before > 0 && during >= 0)
			snprintf(pd, sizeof(pd), "%.0f%%", 100.0 * during / before);
		if (before > 0 && after >= 0)
			snprintf(pa, sizeof(pa), "%.0f%%", 100.0 * after / before);
		note("snapshot %zu: guest speed (units/s) before=%.4g during=%.4g after=%.4g during/before=%s "
		     "after/before=%s (windows %.0f ms, %.0f ms, %.0f ms)",
		     i + 1, before, during, after, pd, pa, (be - bs) * 1e3, (s->t_done - s->t_resumed) * 1e3,
		     (ae - as) * 1e3);
	}
}

/* ---- main loop ---- */

static void runner_init(struct runner *r)
{
	memset(r, 0, sizeof(*r));
	r->listen_fd = -1;
	r->snap_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; i < MAX_CLIENTS; i++)
		r->clients[i].fd = -1;
	r->method = BGSNAP_METHOD_AUTO;
}

static void runner_free(struct runner *r)
{
	/* Before guest RAM goes away: the restore writes into it. */
	if (r->lazy)
		bgsnap_lazy_free(r->lazy);
	if (r->lazy_reader)
		bgsnap_reader_close(r->lazy_reader);
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_close(&r->clients[i]);
	if (r->listen_fd >= 0) {
		close(r->listen_fd);
		unlink(r->control_path);
	}
	if (r->snap_fd >= 0)
		close(r->snap_fd);
	for (size_t i = 0; i < r->nsnaps; i++)
		free(r->snaps[i].path);
	free(r->snaps);
	free(r->samples);
	vm_destroy(&r->vm);
}

/* Ends a lazy restore once every page is in (block: wait for it). */
static void lazy_poll(struct runner *r, bool block)
{
	if (!r->lazy)
		return;
	struct bgsnap_lazy_stats ls;
	if (!block && (bgsnap_lazy_get_stats(r->lazy, &ls, sizeof ls) < 0 || !ls.done))
		return;
	int e = bgsnap_lazy_wait(r->lazy);
	bgsnap_lazy_get_stats(r->lazy, &ls, sizeof ls);
	if (e < 0) {
		note("lazy restore failed: %s", bgsnap_lazy_errmsg(r->lazy));
		r->failures++;
	} else if (r->stats) {
		note("lazy restore: usable after %.1f ms, complete after %.1f ms; %" PRIu64 " of %" PRIu64
		     " pages on demand (%" PRIu64 " faults), %" PRIu64 " prefetched",
		     (double)ls.usable_us / 1e3, (double)ls.total_us / 1e3, ls.pages_demand, ls.pages_total, ls.faults,
		     ls.pages_prefetched);
	}
	bgsnap_lazy_free(r->lazy);
	r->lazy = NULL;
	bgsnap_reader_close(r->lazy_reader);
	r->lazy_reader = NULL;
}

/* Runs the machine until the guest halts (or quit); returns the exit code. */
static int run_machine(struct runner *r)
{
	char err[256];
	if (r->snap_fd < 0) {
		note("eventfd: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (r->control_path && control_open(r) < 0)
		return EXIT_FAIL;
	r->t0 = now_s();
	add_sample(r, r->t0, atomic_load(&r->vm.progress));
	if (vm_start(&r->vm, err, sizeof(err)) < 0) {
		note("%s", err);
		return EXIT_FAIL;
	}
	bool finished = false;
	while (!r->quit) {
		double t = now_s();
		sample_now(r);
		snapshot_poll(r, false);
		lazy_poll(r, false);
		if (!finished && vm_finished(&r->vm)) {
			finished = true;
			r->t_end = t;
		}
		/* Start the earliest due scheduled snapshot. */
		double next_due = -1;
		/* Snapshots wait for a lazy restore to complete: its missing-page
		 * registration and a snapshot's write protection do not mix. */
		if (!r->cur && !r->lazy) {
			for (size_t i = 0; i < r->nsnaps; i++) {
				struct snap *s = &r->snaps[i];
				if (s->state != 0 || s->at_ms == UINT64_MAX)
					continue;
				double due = r->t0 + (double)s->at_ms / 1e3;
				if (finished) {
					s->state = 4;
					note("snapshot %s at %" PRIu64 " ms not taken: the guest ended after %.0f ms", s->path,
					     s->at_ms, (r->t_end - r->t0) * 1e3);
					r->failures++;
					continue;
				}
				if (due <= t) {
					if (snapshot_start(r, s) < 0) {
						note("snapshot %s failed: %s", s->path, s->errmsg);
						r->failures++;
					}
					next_due = 0;
					break;
				}
				if (next_due < 0 || due < next_due)
					next_due = due;
			}
		}
		if (finished && !r->cur) {
			lazy_poll(r, true);
			bool pending = false;
			for (size_t i = 0; i < r->nsnaps; i++)
				pending |= r->snaps[i].state == 0 && r->snaps[i].at_ms != UINT64_MAX;
			if (!pending)
				break;
		}

		struct pollfd pf[3 + MAX_CLIENTS];
		int np = 0;
		pf[np++] = (struct pollfd){.fd = r->vm.done_fd, .events = POLLIN};
		pf[np++] = (struct pollfd){.fd = r->snap_fd, .events = POLLIN};
		if (r->listen_fd >= 0)
			pf[np++] = (struct pollfd){.fd = r->listen_fd, .events = POLLIN};
		int cidx[MAX_CLIENTS];
		for (int i = 0; i < MAX_CLIENTS; i++) {
			if (r->clients[i].fd >= 0) {
				cidx[np - (r->listen_fd >= 0 ? 3 : 2)] = i;
				pf[np++] = (struct pollfd){.fd = r->clients[i].fd, .events = POLLIN};
			}
		}
		/* Sample often while a snapshot runs: that is the window measured. */
		int timeout = r->cur ? 2 : 10;
		if (next_due > 0) {
			int ms = (int)((next_due - now_s()) * 1e3);
			if (ms < timeout)
				timeout = ms < 0 ? 0 : ms;
		}
		if (finished)
			pf[0].events = 0; /* already seen */
		int n = poll(pf, (nfds_t)np, timeout);
		if (n <= 0)
			continue;
		int base = 2;
		if (r->listen_fd >= 0) {
			if (pf[2].revents & POLLIN)
				control_accept(r);
			base = 3;
		}
		for (int k = base; k < np; k++)
			if (pf[k].revents & (POLLIN | POLLHUP | POLLERR))
				client_readable(r, &r->clients[cidx[k - base]]);
	}
	if (r->quit) {
		if (r->cur) {
			bgsnap_cancel(r->eng);
			snapshot_poll(r, true);
		}
		if (r->user_stopped) {
			r->user_stopped = false;
			vm_resume(&r->vm);
		}
		vm_quit(&r->vm);
		if (!finished)
			r->t_end = now_s();
	}
	vm_join(&r->vm);
	lazy_poll(r, true);
	sample_now(r);
	fflush(stdout);
	if (r->vm.error) {
		note("%s", r->vm.errmsg);
		r->failures++;
	}
	if (r->stats)
		report(r);
	return r->failures ? EXIT_FAIL : EXIT_OK;
}

/* ---- commands ---- */

static void run_usage(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "restore"))
		fprintf(f, "usage: bgsnap-vm restore SNAPSHOT [--lazy] [options]\n"
		           "Builds a fresh VM from SNAPSHOT (RAM, registers, console) and continues the guest;\n"
		           "its console output is the rest of the original run's output.\n");
	else
		fprintf(f, "usage: bgsnap-vm run GUEST [options]\n"
		           "Runs GUEST (a name from `bgsnap-vm guests`, or a flat x86-64 binary) with its\n"
		           "console on stdout.\n");
	fprintf(f, "options:\n");
	if (!strcmp(cmd, "run"))
		fprintf(f, "  --mem SIZE             guest RAM (default 128M; 2M..2G)\n"
		           "  --rounds N             guest work rounds (0: the guest's default)\n");
	else
		fprintf(f, "  --lazy                 run at once, guest RAM filled on demand (userfaultfd)\n");
	fprintf(f, "  --method M             snapshot method: auto uffd uffd-signal mprotect fork stop\n"
	           "  --snapshot-at MS:PATH  snapshot into PATH MS ms after the guest (re)started (repeatable)\n"
	           "  --control SOCKET       UNIX socket for JSON commands (snapshot, query-snapshot,\n"
	           "                         query-status, stop, cont, quit)\n"
	           "  --stats                print guest speed and snapshot figures on stderr\n"
	           "  --no-thp               back guest RAM with 4 KiB pages only (default: MADV_HUGEPAGE)\n"
	           "  -h, --help             this help\n");
}

static int cmd_run_or_restore(int argc, char **argv, bool restore)
{
	const char *cmd = restore ? "restore" : "run";
	static const struct option lo[] = {
		{"mem", required_argument, NULL, 'm'},
		{"rounds", required_argument, NULL, 'r'},
		{"method", required_argument, NULL, 'M'},
		{"snapshot-at", required_argument, NULL, 's'},
		{"control", required_argument, NULL, 'c'},
		{"stats", no_argument, NULL, 'S'},
		{"lazy", no_argument, NULL, 'l'},
		{"no-thp", no_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct runner R, *r = &R;
	runner_init(r);
	uint64_t mem = DEFAULT_RAM, rounds = 0;
	bool lazy = false, mem_set = false, rounds_set = false, thp = true;
	int rc = EXIT_USAGE;
	optind = 1;
	int o;
	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'm':
			if (parse_size(optarg, &mem) < 0 || mem < VM_MIN_RAM || mem > VM_MAX_RAM || mem % 4096) {
				note("--mem: a size between 2M and 2G, a multiple of 4K, expected: %s", optarg);
				goto out;
			}
			mem_set = true;
			break;
		case 'r': {
			char *end;
			errno = 0;
			rounds = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-') {
				note("--rounds: a number expected: %s", optarg);
				goto out;
			}
			rounds_set = true;
			break;
		}
		case 'M': {
			int m = bgsnap_method_parse(optarg);
			if (m < 0) {
				note("--method: unknown method %s", optarg);
				goto out;
			}
			r->method = m;
			break;
		}
		case 's': {
			char *colon = strchr(optarg, ':'), *end;
			errno = 0;
			unsigned long long ms = strtoull(optarg, &end, 10);
			if (!colon || end != colon || colon == optarg || !colon[1] || errno || optarg[0] == '-') {
				note("--snapshot-at: MS:PATH expected: %s", optarg);
				goto out;
			}
			if (!snap_add(r, colon + 1, -1, ms)) {
				note("out of memory");
				rc = EXIT_FAIL;
				goto out;
			}
			break;
		}
		case 'c':
			r->control_path = optarg;
			break;
		case 'S':
			r->stats = true;
			break;
		case 'l':
			lazy = true;
			break;
		case 'T':
			thp = false;
			break;
		case 'h':
			run_usage(stdout, cmd);
			rc = EXIT_OK;
			goto out;
		default:
			run_usage(stderr, cmd);
			goto out;
		}
	}
	if (optind != argc - 1) {
		run_usage(stderr, cmd);
		goto out;
	}
	if ((restore && (mem_set || rounds_set)) || (!restore && lazy)) {
		note("%s does not take %s", cmd, restore ? "--mem or --rounds (they come from the snapshot)" : "--lazy");
		goto out;
	}
	for (size_t i = 0; i < r->nsnaps; i++)
		r->snaps[i].method = r->method;
	const char *arg = argv[optind];
	char err[512];
	rc = EXIT_FAIL;

	if (!restore) {
		const struct vm_guest *g = vm_guest_find(arg);
		void *img = NULL;
		size_t len = 0;
		if (g) {
			len = (size_t)(g->end - g->start);
		} else {
			FILE *f = fopen(arg, "rb");
			if (!f) {
				note("%s: not a built-in guest (see `bgsnap-vm guests`) and cannot open it as a file: %s", arg,
				     strerror(errno));
				rc = EXIT_USAGE;
				goto out;
			}
			size_t cap = VM_DATA_ADDR - VM_LOAD_ADDR + 1;
			img = malloc(cap);
			if (img)
				len = fread(img, 1, cap, f);
			bool bad = !img || ferror(f);
			fclose(f);
			if (bad) {
				note("%s: cannot read the guest image", arg);
				free(img);
				goto out;
			}
		}
		r->guest_name = g ? g->name : arg;
		if (vm_create(&r->vm, mem, true, thp, err, sizeof(err)) < 0 ||
		    vm_load_guest(&r->vm, g ? (const void *)g->start : img, len, rounds, err, sizeof(err)) < 0) {
			note("%s", err);
			free(img);
			goto out;
		}
		free(img);
	} else {
		bgsnap_reader *rd = NULL;
		int e = bgsnap_reader_open(&rd, arg, err, sizeof(err));
		if (e < 0) {
			note("%s: %s", arg, err[0] ? err : strerror(-e));
			goto out;
		}
		struct bgsnap_region_info ri;
		const void *cpu = NULL, *con = NULL, *mach = NULL;
		size_t cpul = 0, conl = 0, machl = 0;
		int idx = bgsnap_reader_find_region(rd, "ram");
		if (idx < 0 || bgsnap_reader_region(rd, (unsigned)idx, &ri, sizeof ri) < 0) {
			note("%s: no region \"ram\": not a bgsnap-vm snapshot", arg);
			bgsnap_reader_close(rd);
			goto out;
		}
		if (bgsnap_reader_find_state(rd, "cpu", &cpu, &cpul) < 0 ||
		    bgsnap_reader_find_state(rd, "console", &con, &conl) < 0 ||
		    bgsnap_reader_find_state(rd, "machine", &mach, &machl) < 0) {
			note("%s: state blobs cpu, console and machine are required: not a bgsnap-vm snapshot", arg);
			bgsnap_reader_close(rd);
			goto out;
		}
		char text[512];
		uint64_t console_bytes = 0, progress = 0;
		size_t tl = conl < sizeof(text) - 1 ? conl : sizeof(text) - 1;
		memcpy(text, con, tl);
		text[tl] = 0;
		char *p = strstr(text, "\nbytes=0x");
		bool ok = strncmp(text, "bgsnap-vm console 1\n", 20) == 0 && p &&
		          sscanf(p + 9, "%" SCNx64, &console_bytes) == 1;
		tl = machl < sizeof(text) - 1 ? machl : sizeof(text) - 1;
		memcpy(text, mach, tl);
		text[tl] = 0;
		p = strstr(text, "\nprogress=0x");
		ok = ok && strncmp(text, "bgsnap-vm machine 1\n", 20) == 0 && p &&
		     sscanf(p + 12, "%" SCNx64, &progress) == 1;
		if (!ok) {
			note("%s: bad console or machine state blob", arg);
			bgsnap_reader_close(rd);
			goto out;
		}
		bool was_halted = strstr(text, "\nhalted=1\n") != NULL;
		p = strstr(text, "\nguest=");
		static char gname[64];
		if (p && sscanf(p + 7, "%63[^\n]", gname) == 1)
			r->guest_name = gname;
		else
			r->guest_name = "?";
		if (vm_create(&r->vm, ri.size, false, thp, err, sizeof(err)) < 0) {
			note("%s", err);
			bgsnap_reader_close(rd);
			goto out;
		}
		if (vm_load_cpu(&r->vm, cpu, cpul, err, sizeof(err)) < 0) {
			note("%s: %s", arg, err);
			bgsnap_reader_close(rd);
			goto out;
		}
		struct bgsnap_restore_target tg = {.region = (unsigned)idx, .dst = r->vm.ram, .len = r->vm.ram_size};
		double t_rs = now_s();
		if (lazy) {
			/* RAM is filled on demand while the guest already runs; the
			 * reader stays borrowed until the restore is complete. */
			e = bgsnap_lazy_restore_start(&r->lazy, rd, &tg, 1, err, sizeof(err));
			if (e < 0) {
				note("%s: lazy restore: %s", arg, err);
				bgsnap_reader_close(rd);
				goto out;
			}
			r->lazy_reader = rd;
		} else {
			bgsnap_reader_close(rd);
			e = bgsnap_restore(arg, &tg, 1, 0, err, sizeof(err));
			if (e < 0) {
				note("%s: cannot restore guest RAM: %s", arg, err);
				goto out;
			}
		}
		if (r->stats)
			note("guest RAM %s in %.1f ms", lazy ? "usable (lazy restore)" : "restored", (now_s() - t_rs) * 1e3);
		r->vm.console_bytes = console_bytes;
		r->vm.halted = was_halted;
		atomic_store(&r->vm.progress, progress);
		if (r->stats)
			note("restored %s: guest %s, %zu MiB RAM, console offset %" PRIu64 ", rip 0x%" PRIx64, arg,
			     r->guest_name, r->vm.ram_size >> 20, console_bytes, r->vm.rip);
	}
	rc = run_machine(r);
out:
	runner_free(r);
	return rc;
}

static int cmd_run(int argc, char **argv)
{
	return cmd_run_or_restore(argc, argv, false);
}

static int cmd_restore(int argc, char **argv)
{
	return cmd_run_or_restore(argc, argv, true);
}

static int cmd_guests(int argc, char **argv)
{
	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			printf("usage: bgsnap-vm guests\nLists the built-in guests, one a line: name and description.\n");
			return EXIT_OK;
		}
		fprintf(stderr, "usage: bgsnap-vm guests\n");
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < vm_guest_count; i++)
		printf("%-8s %s\n", vm_guests[i].name, vm_guests[i].desc);
	return EXIT_OK;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{"run", cmd_run, "run a guest (snapshots with --snapshot-at or the control socket)"},
	{"restore", cmd_restore, "continue a snapshotted guest"},
	{"guests", cmd_guests, "list the built-in guests"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap-vm COMMAND [OPTIONS]   (bgsnap-vm COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nbgsnap-vm %s\n", bgsnap_version());
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "bgsnap-vm: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
