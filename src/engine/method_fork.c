/*
 * method_fork.c - the fork() baseline (what Redis does for RDB saves): in the
 * pause the host forks; the child's copy-on-write view of memory is the
 * pause-instant content, and the child writes it out while the host runs.
 * The pause is the fork (page-table copy), every first write of the host
 * afterwards pays a kernel copy-on-write fault, and the extra memory is one
 * page per page written, up to 100%.
 *
 * The child writes and fsyncs the unfinished file; the parent commits it
 * (names it, fsyncs the directory) only after the child exited with
 * success, so a child killed midway never leaves a committed file.  Progress travels
 * through the engine's shared statistics page, the child's error message
 * through a shared block of its own.
 */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"

struct fork_shared {
	struct bgsnap_err err;     /* written by the child only */
};

struct fork_priv {
	struct fork_shared *shared;
	pid_t pid;
	pid_t parent;
	pthread_mutex_t lock;      /* orders the reaping against cancel's kill */
	int reaped;                /* under lock: never kill a reaped pid */
};

static int fork_prepare(struct bgsnap_engine *e)
{
	struct fork_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(&e->err, -ENOMEM, "out of memory");
	p->shared = mmap(NULL, sizeof(*p->shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->shared == MAP_FAILED) {
		free(p);
		return err_sys(&e->err, -errno, "cannot map the fork method's shared block");
	}
	memset(p->shared, 0, sizeof(*p->shared));
	p->pid = -1;
	pthread_mutex_init(&p->lock, NULL);
	e->method_priv = p;
	/* Worst case, every page its own record (+ a few state blobs, which
	 * protect adds): reserved here, not in the pause. */
	int r = fmtw_reserve(&e->fw, e->pages_total + 64, 0);
	return r ? err_set(&e->err, r, "%s", e->werr.msg) : 0;
}

/* Private_Dirty of the child: the pages the parent's writes have copied
 * away from it, which is the extra memory this method costs. */
static uint64_t private_dirty_bytes(void)
{
	/* open/read and a stack buffer: the child must not allocate. */
	int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[2048];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *p = strstr(buf, "Private_Dirty:");
	if (!p)
		return 0;
	p += strlen("Private_Dirty:");
	while (*p == ' ')
		p++;
	uint64_t kb = 0;
	while (*p >= '0' && *p <= '9')
		kb = kb * 10 + (uint64_t)(*p++ - '0');
	return kb * 1024;
}

/* Closes every descriptor in [lo, hi]. */
static void close_span(unsigned lo, unsigned hi)
{
	if (lo > hi || syscall(SYS_close_range, lo, hi, 0u) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	unsigned end = hi < (unsigned)(max > 0 ? max : 1024) ? hi : (unsigned)(max > 0 ? max : 1024) - 1;
	for (unsigned fd = lo; fd <= end; fd++)
		close((int)fd);
}

/* Closes every descriptor but a and b (-1: none). */
static void close_all_but(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;
	if (lo < 0)
		lo = hi;
	unsigned next = 0;
	if (lo >= 0) {
		if (lo > 0)
			close_span(0, (unsigned)lo - 1);
		if (hi > lo + 1)
			close_span((unsigned)lo + 1, (unsigned)hi - 1);
		next = (unsigned)hi + 1;
	}
	close_span(next, ~0u);
}

static void child_main(struct bgsnap_engine *e, struct fork_priv *p)
{
	/* No PR_SET_PDEATHSIG: it fires when the forking *thread* exits, and
	 * the host may well call bgsnap_start from a short-lived thread. */
	signal(SIGPIPE, SIG_IGN);
	/* Keep only the sink: an inherited read end of our own pipe would make
	 * a closed reader look alive (the write blocks instead of EPIPE), and
	 * the host's other descriptors are none of the child's business. */
	sink_in_child(&e->sink);
	close_all_but(e->sink.fd, e->sink.dirfd);   /* the directory: a named temporary's removal */
	/* The parent's pause ends after this; the fork is its bulk. */
	e->meta.pause_us = us_since(e->t_pause_ns);
	struct bgsnap_err *err = &p->shared->err;
	e->fw.err = err;
	int r = engine_write_all(e, &e->fw);
	if (!r) {
		for (size_t i = 0; i < e->state.count && !r; i++)
			r = fmtw_state(&e->fw, e->state.blobs[i].name, e->state.blobs[i].data,
			               e->state.blobs[i].len);
	}
	if (!r)
		r = fmtw_finish(&e->fw, &e->meta);
	if (!r && e->sink.owns_fd && fsync(e->sink.fd) < 0)
		r = err_sys(err, -errno, "fsync of the snapshot");
	engine_progress(e, &e->fw);
	atomic_store(&e->live->extra_mem_peak, private_dirty_bytes());
	if (r && !err->code)
		err_set(err, r, "snapshot child failed: %s", strerror(-r));
	/* A parent that died cannot commit or remove a named temporary: do it
	 * here (an unnamed file goes with our descriptor). */
	if (getppid() != p->parent)
		sink_remove_temporary(&e->sink);
	_exit(r ? 1 : 0);
}

static int fork_protect(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	/* The child must not allocate: a thread of the host may have held the
	 * allocator's lock at fork time.  The index was reserved before the
	 * pause; the state blobs are only known now. */
	int r = fmtw_reserve(&e->fw, e->pages_total + e->state.count + 1, e->state.count);
	if (r)
		return err_set(&e->err, r, "%s", e->werr.msg);
	p->parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return err_sys(&e->err, -errno, "fork() failed");
	if (pid == 0)
		child_main(e, p);
	p->pid = pid;
	return 0;
}

static int fork_join(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	/* Wait without reaping, so a concurrent cancel cannot signal a
	 * recycled pid; reap under the lock cancel takes. */
	while (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&p->lock);
	int status = 0;
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->reaped = 1;
	pthread_mutex_unlock(&p->lock);

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (engine_cancelled(e))
			return -ECANCELED;
		return sink_commit(&e->sink, &e->werr);
	}
	if (engine_cancelled(e) && !e->err.code)
		return -ECANCELED;
	if (p->shared->err.code)
		return engine_fail(e, p->shared->err.code, "%s", p->shared->err.msg);
	if (WIFSIGNALED(status))
		return engine_fail(e, -EINTR, "the snapshot child process was killed by signal %d (%s)",
		                   WTERMSIG(status), strsignal(WTERMSIG(status)));
	return engine_fail(e, -EIO, "the snapshot child process exited with status %d",
	                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void fork_cancel(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->pid > 0 && !p->reaped)
		kill(p->pid, SIGKILL);
	pthread_mutex_unlock(&p->lock);
}

static void fork_release(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	if (!p)
		return;
	munmap(p->shared, sizeof(*p->shared));
	pthread_mutex_destroy(&p->lock);
	free(p);
	e->method_priv = NULL;
}

/* Nothing to abort: until the fork in protect there is no child. */
const struct method_ops method_fork_ops = {
	.method = BGSNAP_METHOD_FORK,
	.caps = METHOD_NO_SHARED_REGIONS,
	.prepare = fork_prepare,
	.protect = fork_protect,
	.join = fork_join,
	.cancel = fork_cancel,
	.release = fork_release,
};
