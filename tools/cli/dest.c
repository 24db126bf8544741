/*
 * dest.c - snapshot destinations (dest.h): the parser, opening a stream
 * destination, and reaping it once the engine is done.
 *
 * The command of exec: is started with posix_spawn, not fork: the caller
 * may hold gigabytes of mapped memory and several threads (bgsnap-vm), and
 * the child must inherit nothing but its standard input: every other
 * descriptor is closed in it, SIGPIPE is back to its default (callers
 * ignore it, and an ignored signal survives exec) and no signal is blocked.
 */
#include "dest.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

/* QEMU migration schemes bgsnap does not speak: refused, never files. */
static const char *const unsupported[] = { "tcp", "rdma", "vsock", "channel", "udp", "socket" };

static int scheme_is(const char *spec, const char *scheme, size_t len)
{
	return strlen(scheme) == len && !strncmp(spec, scheme, len);
}

int dest_parse(const char *spec, struct dest *d, char *err, size_t err_len)
{
	*d = (struct dest){ .kind = DEST_FILE, .arg = spec, .fd = -1 };
	if (!spec || !spec[0])
		return cli_fail(err, err_len, -EINVAL, "empty destination (file:PATH, exec:COMMAND, unix:PATH, fd:N)");
	const char *colon = strchr(spec, ':');
	if (!colon)
		return 0;
	size_t n = (size_t)(colon - spec);
	const char *arg = colon + 1;
	if (scheme_is(spec, "file", n))
		d->kind = DEST_FILE;
	else if (scheme_is(spec, "exec", n))
		d->kind = DEST_EXEC;
	else if (scheme_is(spec, "unix", n))
		d->kind = DEST_UNIX;
	else if (scheme_is(spec, "fd", n))
		d->kind = DEST_FD;
	else {
		for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
			if (scheme_is(spec, unsupported[i], n))
				return cli_fail(err, err_len, -EINVAL,
				                "%s: scheme '%s:' is not supported (file:, exec:, unix:, fd:; "
				                "write file:%s for a file of that name)", spec, unsupported[i], spec);
		return 0;
	}
	d->arg = arg;
	if (!arg[0])
		return cli_fail(err, err_len, -EINVAL, "%s: missing %s", spec,
		                d->kind == DEST_EXEC ? "command" : d->kind == DEST_FD ? "descriptor number" : "path");
	if (d->kind == DEST_FD) {
		uint64_t v;
		if (!cli_parse_u64(arg, 10, 0, 1 << 20, &v))
			return cli_fail(err, err_len, -EINVAL, "%s: '%s' is not a descriptor number", spec, arg);
		d->fd = (int)v;
	}
	if (d->kind == DEST_UNIX && strlen(arg) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return cli_fail(err, err_len, -EINVAL, "%s: socket path too long (at most %zu bytes)", spec,
		                sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return 0;
}

/* Checks that fd:N is open for writing; it stays the caller's. */
static int open_fd(const char *spec, const struct dest *d, struct dest_stream *s, char *err, size_t err_len)
{
	int fl = fcntl(d->fd, F_GETFL);
	if (fl < 0)
		return cli_fail(err, err_len, -errno, "%s: descriptor %d is not open", spec, d->fd);
	if ((fl & O_ACCMODE) == O_RDONLY)
		return cli_fail(err, err_len, -EBADF, "%s: descriptor %d is not open for writing", spec, d->fd);
	s->fd = d->fd;
	return 0;
}

static int open_unix(const char *spec, const struct dest *d, struct dest_stream *s, char *err, size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->arg);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cli_fail(err, err_len, -errno, "%s: socket: %s", spec, strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return cli_fail(err, err_len, -e, "%s: cannot connect: %s", spec, strerror(e));
	}
	/* Nothing is ever read back: a peer that closes shows as EPIPE. */
	shutdown(fd, SHUT_RD);
	s->fd = fd;
	s->owned = 1;
	return 0;
}

static int spawn_attrs(posix_spawnattr_t *at, posix_spawn_file_actions_t *fa, int rd)
{
	sigset_t none, pipe_only;
	sigemptyset(&none);
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	int rc = posix_spawnattr_setsigmask(at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(at, &pipe_only);
	if (!rc)
		rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(fa, rd, STDIN_FILENO);
	if (!rc)
		rc = posix_spawn_file_actions_addclosefrom_np(fa, STDERR_FILENO + 1);
	return rc;
}

static int open_exec(const char *spec, const struct dest *d, struct dest_stream *s, char *err, size_t err_len)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cli_fail(err, err_len, -errno, "%s: pipe: %s", spec, strerror(errno));
	posix_spawnattr_t at;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_init(&fa);
	int rc = spawn_attrs(&at, &fa, p[0]);
	char *argv[] = { "sh", "-c", (char *)d->arg, NULL };
	pid_t pid = 0;
	if (!rc)
		rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(p[0]);
	if (rc) {
		close(p[1]);
		return cli_fail(err, err_len, -rc, "%s: cannot start /bin/sh: %s", spec, strerror(rc));
	}
	s->fd = p[1];
	s->owned = 1;
	s->pid = pid;
	return 0;
}

/* Closes the stream and reaps the command: 0, or -EPIPE with why. */
static int close_stream(const char *spec, struct dest_stream *s, char *why, size_t why_len)
{
	if (s->owned && s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->owned = 0;
	if (!s->pid)
		return 0;
	int st;
	pid_t w;
	while ((w = waitpid(s->pid, &st, 0)) < 0 && errno == EINTR)
		;
	s->pid = 0;
	if (w < 0)
		return cli_fail(why, why_len, -ECHILD, "%s: cannot wait for the command: %s", spec, strerror(errno));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		return cli_fail(why, why_len, -EPIPE, "%s: the command exited with status %d%s", spec, WEXITSTATUS(st),
		                WEXITSTATUS(st) == 127 ? " (command not found?)" : "");
	return cli_fail(why, why_len, -EPIPE, "%s: the command was killed by signal %d (%s)", spec, WTERMSIG(st),
	                strsignal(WTERMSIG(st)));
}

int dest_open(const char *spec, const struct dest *d, struct dest_stream *s, char *err, size_t err_len)
{
	*s = (struct dest_stream){ .fd = -1 };
	switch (d->kind) {
	case DEST_FILE: return 0;
	case DEST_FD: return open_fd(spec, d, s, err, err_len);
	case DEST_UNIX: return open_unix(spec, d, s, err, err_len);
	case DEST_EXEC: return open_exec(spec, d, s, err, err_len);
	}
	return 0;
}

int dest_close(const char *spec, struct dest_stream *s, char *why, size_t why_len)
{
	return close_stream(spec, s, why, why_len);
}

int dest_start(bgsnap_engine *e, const char *spec, const struct dest *d, struct dest_stream *s, char *err,
               size_t err_len)
{
	int rc = dest_open(spec, d, s, err, err_len);
	if (rc < 0)
		return rc;
	rc = d->kind == DEST_FILE ? bgsnap_start(e, d->arg) : bgsnap_start_fd(e, s->fd);
	/* A receiver gone before the header was written fails the start. */
	if (rc < 0)
		return dest_finish(e, spec, s, rc, err, err_len);
	return rc;
}

int dest_finish(bgsnap_engine *e, const char *spec, struct dest_stream *s, int rc, char *err, size_t err_len)
{
	char why[320] = "";
	int crc = close_stream(spec, s, why, sizeof(why));
	if (rc < 0) {
		const char *m = bgsnap_errmsg(e);
		if (!m || !m[0])
			m = strerror(-rc);
		if (crc < 0)
			return cli_fail(err, err_len, rc, "%s (%s)", why, m);
		return cli_fail(err, err_len, rc, "%s: %s", spec, m);
	}
	if (crc < 0)
		return cli_fail(err, err_len, crc, "%s", why);
	return 0;
}
