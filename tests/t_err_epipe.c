/*
 * t_err_epipe.c - a stream whose reader goes away: for every method, a
 * snapshot to a pipe (and to a stream socket) whose reading end is closed
 * after a few KiB fails with -EPIPE (-ECONNRESET accepted for the socket)
 * and a message, and does NOT kill the host with SIGPIPE: the test keeps
 * SIGPIPE's default action, as a host that never heard of it would.  After
 * the failure the memory is writable, the writers run, no child is left.
 * timeout: 600
 */
#include <signal.h>
#include <sys/socket.h>

#include "snaptest.h"

#define MEM (16u << 20)

struct closer {
	int fd;
	size_t after;  /* bytes to read before closing */
};

static void *close_early(void *p)
{
	struct closer *c = p;
	char buf[4096];
	size_t got = 0;
	while (got < c->after) {
		ssize_t n = read(c->fd, buf, sizeof(buf) < c->after - got ? sizeof(buf) : c->after - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(c->fd);
	return NULL;
}

static int run(int method, int use_socket, size_t after)
{
	/* Default SIGPIPE disposition and not blocked: the library must cope. */
	signal(SIGPIPE, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);

	int sv[2];
	tu_stream_pair(sv, use_socket);
	/* sv[0] is read by the closer, sv[1] written by the engine. */
	struct st_busy b;
	st_busy_start(&b, method, MEM, 5, 0, 1u << 20, true);

	struct closer c = { .fd = sv[0], .after = after };
	pthread_t ct;
	CHECK(pthread_create(&ct, NULL, close_early, &c) == 0, "pthread_create");
	tu_phase("bgsnap_start_fd to a stream whose reader leaves");
	int r = bgsnap_start_fd(b.e, sv[1]);
	tu_phase("bgsnap_wait of a stream whose reader left");
	if (r == 0)
		r = bgsnap_wait(b.e);
	pthread_join(ct, NULL);
	if (use_socket && r == -ECONNRESET)
		r = -EPIPE;
	CHECK_RC(r, -EPIPE, "snapshot to a %s closed after %zu bytes; message: %s", use_socket ? "socket" : "pipe",
	         after, bgsnap_errmsg(b.e));
	CHECK_ERRMSG(b.e);
	CHECK_WRITERS_PROGRESS(&b.w);
	CHECK_WRITABLE("region after EPIPE", b.mem, MEM);
	CHECK(tu_no_children(), "a child process was left");
	sigset_t pend;
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGPIPE), "a SIGPIPE is left pending for the host");
	close(sv[1]);

	/* The engine still works: the next snapshot commits, exact. */
	char path[600];
	snprintf(path, sizeof(path), "%s/after-epipe.bgs", tu_tmpdir());
	st_snapshot_ok(b.e, path);
	CHECK_FILE_REGION(path, "mem", b.copy, MEM);
	st_busy_stop(&b);
	return 0;
}

static int case_pipe_header(void *arg) { return run(*(int *)arg, 0, 0); }
static int case_pipe_mid(void *arg) { return run(*(int *)arg, 0, 1u << 20); }
static int case_socket_mid(void *arg) { return run(*(int *)arg, 1, 300000); }

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "pipe-closed-at-once", case_pipe_header, ~0u, 20);
	st_for_each_method(&t, "pipe-closed-after-1MiB", case_pipe_mid, ~0u, 20);
	st_for_each_method(&t, "socket-closed-after-300KB", case_socket_mid, ~0u, 20);
	tu_tally_exit(&t, "t_err_epipe");
}
