/*
 * control.c - bgsnap-vm's control socket: JSON lines in the manner of
 * QEMU's QMP.  On connect the server greets with {"QMP":{...}}; each line is
 * one command (qmp.c parses it) answered by one line, {"return":{...}} or
 * {"error":{"class":...,"desc":...}}, with the command's "id" echoed.
 * Commands: qmp_capabilities, snapshot, query-snapshot, query-status,
 * stop, cont, quit.
 *
 * The socket file has the mode --control-mode gives (0600 by default):
 * a client can stop the VM or make it write a file anywhere.  Clients are
 * non-blocking and their replies queue up to CLIENT_OUT_MAX: one that
 * sends commands and never reads is dropped, never waited for, so the
 * main loop (snapshots, the guest's pauses) goes on whatever a client does.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/json.h"
#include "runner.h"

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->overflow = false;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
}

/* Sends what is queued for c, as much as the socket takes now. */
static void client_flush(struct client *c)
{
	size_t off = 0;
	while (off < c->out_len && c->fd >= 0) {
		ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			client_close(c);
			return;
		}
		off += (size_t)n;
	}
	memmove(c->out, c->out + off, c->out_len - off);
	c->out_len -= off;
}

/* Queues a reply and sends what the socket takes.  A client whose queue
 * would pass CLIENT_OUT_MAX sends commands without reading the replies:
 * it is dropped, so that it cannot hold up the VM's loop. */
static void client_send(struct client *c, const char *msg, size_t len)
{
	if (c->fd < 0)
		return;
	if (len > CLIENT_OUT_MAX - c->out_len) {
		cli_error("control client dropped: %zu bytes of replies not read", c->out_len);
		client_close(c);
		return;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		if (cap > CLIENT_OUT_MAX)
			cap = CLIENT_OUT_MAX;
		char *o = realloc(c->out, cap);
		if (!o) {
			client_close(c);
			return;
		}
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, msg, len);
	c->out_len += len;
	client_flush(c);
}

/* A reply line being written: json_open'ed, sent by reply_send. */
struct reply {
	char *buf;
	size_t len;
	FILE *f;
	struct json j;
};

static bool reply_begin(struct reply *rp)
{
	rp->buf = NULL;
	rp->f = open_memstream(&rp->buf, &rp->len);
	if (!rp->f)
		return false;
	json_begin(&rp->j, rp->f);
	json_open(&rp->j, NULL);
	return true;
}

/* Closes the line (with the command's id) and sends it. */
static void reply_send(struct client *c, struct reply *rp, const struct qmp_cmd *cmd)
{
	if (cmd && cmd->id[0])
		json_raw(&rp->j, "id", "%s", cmd->id);
	json_close(&rp->j);
	fputc('\n', rp->f);
	if (fclose(rp->f) == 0)
		client_send(c, rp->buf, rp->len);
	free(rp->buf);
}

static void reply_error(struct client *c, const struct qmp_cmd *cmd, const char *cls, const char *desc)
{
	struct reply rp;
	if (!reply_begin(&rp))
		return;
	json_open(&rp.j, "error");
	json_string(&rp.j, "class", cls);
	json_string(&rp.j, "desc", desc);
	json_close(&rp.j);
	reply_send(c, &rp, cmd);
}

/* {"return":{}} */
static void reply_empty(struct client *c, const struct qmp_cmd *cmd)
{
	struct reply rp;
	if (!reply_begin(&rp))
		return;
	json_open(&rp.j, "return");
	json_close(&rp.j);
	reply_send(c, &rp, cmd);
}

/* A snapshot's status, with the engine's figures so far while it runs. */
static void snap_json(const struct runner *r, const struct snap *s, struct json *j)
{
	struct bgsnap_stats st = s->stats;
	if (s->state == SNAP_ACTIVE && r->eng)
		bgsnap_get_stats(r->eng, &st, sizeof st);
	const char *mname = bgsnap_method_name(s->state != SNAP_PENDING && st.method ? st.method : s->method);
	json_string(j, "status", snap_state_name(s));
	json_string(j, "path", s->path);
	json_string(j, "method", mname ? mname : "?");
	json_u64(j, "pages_total", st.pages_total);
	json_u64(j, "pages_saved", st.pages_saved);
	json_u64(j, "pages_zero", st.pages_zero);
	json_u64(j, "pages_faulted", st.pages_faulted);
	json_u64(j, "bytes_written", st.bytes_written);
	json_u64(j, "achieved_bytes_per_s", st.achieved_bytes_per_s);
	json_u64(j, "pause_us", st.pause_us);
	json_u64(j, "wp_us", st.wp_us);
	json_u64(j, "prewp_us", st.prewp_us);
	json_u64(j, "reprotect_pages", st.reprotect_pages);
	json_u64(j, "total_us", st.total_us);
	json_u64(j, "console_offset", s->console_offset);
	if (s->state == SNAP_FAILED)
		json_string(j, "error", s->errmsg);
}

/* Why a snapshot cannot start now, or NULL. */
static const char *snapshot_refused(struct runner *r, const struct qmp_cmd *cmd, int *method)
{
	static char bad_dest[256];
	struct dest d;
	if (!cmd->has_path || !cmd->path[0])
		return "snapshot needs arguments.path";
	if (dest_parse(cmd->path, &d, bad_dest, sizeof(bad_dest)) < 0)
		return bad_dest;
	*method = r->method;
	if (cmd->has_method && (*method = bgsnap_method_parse(cmd->method)) < 0)
		return "unknown method";
	if (r->cur)
		return "a snapshot is already running";
	if (vm_finished(&r->vm))
		return "the guest has ended";
	if (r->lazy)
		return "a lazy restore is still filling guest RAM; retry later";
	return NULL;
}

static void do_snapshot(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	int method;
	const char *why = snapshot_refused(r, cmd, &method);
	if (why) {
		reply_error(c, cmd, "GenericError", why);
		return;
	}
	struct snap *s = snap_add(r, cmd->path, method, AT_CONTROL);
	if (!s) {
		reply_error(c, cmd, "GenericError",
		            errno == ENOSPC ? "too many snapshots pending" : "out of memory");
		return;
	}
	if (snapshot_start(r, s) < 0) {
		r->last = s;
		reply_error(c, cmd, "GenericError", s->errmsg);
		return;
	}
	struct bgsnap_stats st;
	bgsnap_get_stats(r->eng, &st, sizeof st);
	const char *mname = bgsnap_method_name(st.method);
	struct reply rp;
	if (!reply_begin(&rp))
		return;
	json_open(&rp.j, "return");
	json_string(&rp.j, "method", mname ? mname : "?");
	json_u64(&rp.j, "pause_us", st.pause_us);
	json_u64(&rp.j, "console_offset", s->console_offset);
	json_close(&rp.j);
	reply_send(c, &rp, cmd);
}

static void do_query_snapshot(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	struct reply rp;
	if (!reply_begin(&rp))
		return;
	json_open(&rp.j, "return");
	if (r->last)
		snap_json(r, r->last, &rp.j);
	else
		json_string(&rp.j, "status", "none");
	json_close(&rp.j);
	reply_send(c, &rp, cmd);
}

static void do_query_status(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	const char *st = vm_finished(&r->vm) ? "halted" : r->user_stopped ? "paused" : "running";
	struct reply rp;
	if (!reply_begin(&rp))
		return;
	json_open(&rp.j, "return");
	json_string(&rp.j, "status", st);
	json_bool(&rp.j, "running", !strcmp(st, "running"));
	json_u64(&rp.j, "console_bytes", r->user_stopped ? r->vm.console_bytes : 0);
	json_u64(&rp.j, "progress", (uint64_t)atomic_load(&r->vm.progress));
	json_close(&rp.j);
	reply_send(c, &rp, cmd);
}

static void do_stop(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	if (!r->user_stopped) {
		vm_pause(&r->vm);
		r->user_stopped = true;
	}
	reply_empty(c, cmd);
}

static void do_cont(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	if (r->user_stopped) {
		r->user_stopped = false;
		vm_resume(&r->vm);
	}
	reply_empty(c, cmd);
}

static void do_quit(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	reply_empty(c, cmd);
	r->quit = true;
}

static void do_capabilities(struct runner *r, struct client *c, const struct qmp_cmd *cmd)
{
	reply_empty(c, cmd);
}

static const struct {
	const char *name;
	void (*run)(struct runner *r, struct client *c, const struct qmp_cmd *cmd);
} commands[] = {
	{ "qmp_capabilities", do_capabilities }, { "snapshot", do_snapshot },
	{ "query-snapshot", do_query_snapshot }, { "query-status", do_query_status },
	{ "stop", do_stop },                     { "cont", do_cont },
	{ "quit", do_quit },
};

static void handle_command(struct runner *r, struct client *c, const char *line, size_t len)
{
	struct qmp_cmd cmd;
	char err[256];
	if (qmp_parse(line, len, &cmd, err, sizeof(err)) < 0) {
		reply_error(c, NULL, "GenericError", err);
		return;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd.execute, commands[i].name)) {
			commands[i].run(r, c, &cmd);
			return;
		}
	snprintf(err, sizeof(err), "The command %.60s has not been found", cmd.execute);
	reply_error(c, &cmd, "CommandNotFound", err);
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
			if (c->overflow)
				reply_error(c, NULL, "GenericError", "line too long");
			else if (c->len > 0)
				handle_command(r, c, c->buf, c->len);
			c->len = 0;
			c->overflow = false;
		} else if (c->len < sizeof(c->buf)) {
			c->buf[c->len++] = ch;
		} else {
			c->overflow = true;
		}
	}
}

int control_open(struct runner *r)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(r->control_path) >= sizeof(sa.sun_path)) {
		cli_error("control socket path too long: %s", r->control_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, r->control_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		cli_error("socket: %s", strerror(e));
		return -e;
	}
	/* A stale socket from an earlier run would make bind fail. */
	struct stat stt;
	if (lstat(r->control_path, &stt) == 0 && S_ISSOCK(stt.st_mode))
		unlink(r->control_path);
	/* Whoever can connect can stop the VM or have it write a snapshot
	 * anywhere it may write: the socket file gets control_mode whatever
	 * the launcher's umask.  bind takes its mode from the umask; no other
	 * thread runs yet to create files meanwhile. */
	mode_t old = umask(~(mode_t)r->control_mode & 0777);
	int brc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (brc < 0 || listen(fd, 4) < 0) {
		int e = errno;
		cli_error("cannot listen on %s: %s", r->control_path, strerror(e));
		close(fd);
		return -e;
	}
	r->listen_fd = fd;
	return 0;
}

void control_close(struct runner *r)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_close(&r->clients[i]);
	if (r->listen_fd >= 0) {
		close(r->listen_fd);
		unlink(r->control_path);
		r->listen_fd = -1;
	}
}

static void greet(struct client *c)
{
	struct reply rp;
	if (!reply_begin(&rp))
		return;
	json_open(&rp.j, "QMP");
	json_open(&rp.j, "version");
	char package[64];
	snprintf(package, sizeof(package), "bgsnap-vm %s", bgsnap_version());
	json_string(&rp.j, "package", package);
	json_close(&rp.j);
	json_open_array(&rp.j, "capabilities");
	json_close_array(&rp.j);
	json_close(&rp.j);
	reply_send(c, &rp, NULL);
}

static void control_accept(struct runner *r)
{
	int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &r->clients[i];
		if (c->fd < 0) {
			client_close(c);
			c->fd = fd;
			greet(c);
			return;
		}
	}
	const char *busy = "{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many clients\"}}\n";
	ssize_t w = send(fd, busy, strlen(busy), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	close(fd);
}

size_t control_poll_fds(const struct runner *r, struct pollfd *pf)
{
	size_t n = 0;
	if (r->listen_fd < 0)
		return 0;
	pf[n++] = (struct pollfd){ .fd = r->listen_fd, .events = POLLIN };
	for (int i = 0; i < MAX_CLIENTS; i++) {
		const struct client *c = &r->clients[i];
		if (c->fd >= 0)
			pf[n++] = (struct pollfd){ .fd = c->fd, .events = (short)(POLLIN | (c->out_len ? POLLOUT : 0)) };
	}
	return n;
}

void control_serve(struct runner *r, const struct pollfd *pf, size_t n)
{
	/* Clients first, by descriptor: a connection accepted now could reuse
	 * the number of one closed while serving the others. */
	for (size_t k = 1; k < n; k++) {
		if (!(pf[k].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)))
			continue;
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &r->clients[i];
			if (c->fd != pf[k].fd)
				continue;
			if (pf[k].revents & POLLOUT)
				client_flush(c);
			if (c->fd >= 0 && (pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				client_readable(r, c);
			break;
		}
	}
	if (n && (pf[0].revents & POLLIN))
		control_accept(r);
}
