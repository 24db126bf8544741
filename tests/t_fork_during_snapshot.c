/*
 * t_fork_during_snapshot.c - a child the host forks while a snapshot runs
 * never blocks on the parent's snapshot: it writes every page of the
 * region and exits 0 within the timeout, forked from the resume hook
 * (every page still protected, the writer not started) and again once
 * bgsnap_start returned; the copy buffer is one page, so a child that took
 * its writes for the parent's faults would wait for it forever.  The
 * parent, with two writer threads busy, still commits its pause-instant
 * content.  Every tracking method.
 * timeout: 120
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "snaptest.h"

#define MEM (8u << 20)
#define CHILD_TIMEOUT_MS 10000

/* In the child: only async-signal-safe work (the parent has threads). */
static void child_writes_all(uint8_t *m, size_t len)
{
	for (size_t off = 0; off < len; off += TU_PAGE)
		m[off] = (uint8_t)(off / TU_PAGE) ^ 0x5a;
	for (size_t off = 0; off < len; off += TU_PAGE)
		if (m[off] != (uint8_t)((off / TU_PAGE) ^ 0x5a))
			_exit(3);
	_exit(0);
}

/* Forks a child that writes every page; fails unless it exits 0 in time. */
static void fork_and_check(uint8_t *m, size_t len, const char *when)
{
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child_writes_all(m, len);
	int st = 0;
	uint64_t deadline = tu_now_ns() + (uint64_t)CHILD_TIMEOUT_MS * 1000000u;
	pid_t w;
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 && tu_now_ns() < deadline)
		tu_sleep_ms(10);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		FAIL("a child forked %s did not finish writing its %zu pages within %d ms (blocked on the "
		     "parent's snapshot)", when, len / TU_PAGE, CHILD_TIMEOUT_MS);
	}
	CHECK(w == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a child forked %s ended with status 0x%x%s", when, st,
	      WIFSIGNALED(st) ? " (killed by a signal)" : "");
}

static void resume_then_fork(void *ctx)
{
	struct st_host *h = ctx;
	st_resume(h);
	fork_and_check(h->base, h->len, "in the resume hook");
}

static int case_fork_during(void *arg)
{
	int method = *(int *)arg;
	struct st_busy b;
	st_busy_start(&b, method, MEM, 21, 0, TU_PAGE, true);
	const char *path = b.path;
	struct bgsnap_hooks hk = { .pause = st_pause, .save_state = st_save, .resume = resume_then_fork,
	                           .ctx = &b.h };
	CHECK_RC(bgsnap_set_hooks(b.e, &hk), 0, "set_hooks");

	tu_phase("forking while the snapshot runs");
	int r = bgsnap_start(b.e, path);
	CHECK(r == 0, "bgsnap_start: %s: %s", tu_errname(r), bgsnap_errmsg(b.e));
	fork_and_check(b.mem, MEM, "after bgsnap_start");
	r = bgsnap_wait(b.e);
	CHECK(r == 0, "bgsnap_wait: %s: %s", tu_errname(r), bgsnap_errmsg(b.e));
	CHECK_FILE_REGION(path, "mem", b.copy, MEM);
	CHECK_WRITABLE("region after the snapshot", b.mem, MEM);
	st_busy_stop(&b);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "fork_during", case_fork_during, ST_MASK_TRACKING, 60);
	tu_tally_exit(&t, "t_fork_during_snapshot");
}
