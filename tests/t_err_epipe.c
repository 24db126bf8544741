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
	if (use_socket)
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
	else
		CHECK(pipe2(sv, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	/* sv[0] is read by the closer, sv[1] written by the engine. */
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 5, 0);
	struct tu_writers w;
	tu_writers_start(&w, 2, m, MEM);
	struct st_host h = { .base = m, .len = MEM, .w = &w };
	bgsnap_engine *e = st_engine(method, 1u << 20);
	st_add_region(e, "mem", m, MEM);
	st_set_hooks(e, &h);

	struct closer c = { .fd = sv[0], .after = after };
	pthread_t ct;
	CHECK(pthread_create(&ct, NULL, close_early, &c) == 0, "pthread_create");
	tu_phase("bgsnap_start_fd to a stream whose reader leaves");
	int r = bgsnap_start_fd(e, sv[1]);
	tu_phase("bgsnap_wait of a stream whose reader left");
	if (r == 0)
		r = bgsnap_wait(e);
	pthread_join(ct, NULL);
	if (use_socket && r == -ECONNRESET)
		r = -EPIPE;
	CHECK_RC(r, -EPIPE, "snapshot to a %s closed after %zu bytes; message: %s", use_socket ? "socket" : "pipe",
	         after, bgsnap_errmsg(e));
	CHECK_ERRMSG(e);
	CHECK_WRITERS_PROGRESS(&w);
	CHECK_WRITABLE("region after EPIPE", m, MEM);
	CHECK(tu_no_children(), "a child process was left");
	sigset_t pend;
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGPIPE), "a SIGPIPE is left pending for the host");
	close(sv[1]);

	/* The engine still works, into a fresh pipe drained to the end. */
	bgsnap_destroy(e);
	tu_writers_stop(&w);
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
