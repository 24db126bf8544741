/*
 * method_fork.c - the fork() baseline (what Redis does for RDB saves): in the
 * pause the host forks; the child's copy-on-write view of memory is the
 * pause-instant content, and the child writes it out while the host runs.
 * The pause is the fork (page-table copy), every first write of the host
 * afterwards pays a kernel copy-on-write fault, and the extra memory is one
 * page per page written, up to 100%.
 *
 * The child writes and fsyncs the unfinished file; the parent commits it
 * (names it, fsyncs the directory) only after the child reported success,
 * so a child killed midway never leaves a committed file.  Progress travels
 * through the engine's shared statistics page, the child's error message
 * through a shared block of its own.
 *
 * The child's result travels through a socket pair, not its exit status:
 * a host that ignores SIGCHLD (the kernel reaps the child at once) or reaps
 * its children itself leaves no status to wait for, and a missing result
 * is a failure, never a success.  The parent holds the child through a
 * pidfd, so cancel's SIGKILL cannot reach another process that got a
 * recycled pid.  The child does not exit before the parent has that pidfd:
 * it waits for the parent's end of the socket to shut down before it
 * reports (a parent that died shuts it too).
 */
#include "engine/engine.h"
#include "engine/incr.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"

struct fork_shared {
	struct bgsnap_err err;     /* written by the child only */
	/* The finished file's checksum, written by the child before it
	 * reports success: the next snapshot of a chain names it. */
	uint32_t file_crc;
};

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct fork_priv {
	struct fork_shared *shared;
	pid_t pid;
	pid_t parent;
	int sock;                  /* the parent's end of the result channel */
	int child_sock;            /* the child's end; the parent closes it after fork */
	pthread_mutex_t lock;      /* orders the reaping against cancel's kill */
	int pidfd;                 /* under lock: the child, or -1 */
	int reaped;                /* under lock: the child is gone */
};

static int fork_prepare(struct bgsnap_engine *e)
{
	struct fork_priv *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(&e->err, -ENOMEM, "out of memory");
	p->pid = -1;
	p->pidfd = -1;
	p->sock = p->child_sock = -1;
	pthread_mutex_init(&p->lock, NULL);
	e->method_priv = p;
	p->shared = mmap(NULL, sizeof(*p->shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->shared == MAP_FAILED) {
		p->shared = NULL;
		return err_sys(&e->err, -errno, "cannot map the fork method's shared block");
	}
	memset(p->shared, 0, sizeof(*p->shared));
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(&e->err, -errno, "cannot create the fork method's result channel");
	p->sock = sv[0];
	p->child_sock = sv[1];
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

/* Closes every descriptor but those of keep[0..n) (-1: none). */
static void close_all_but(int *keep, int n)
{
	/* Sorted, a handful of entries: insertion sort. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned next = 0;
	for (int i = 0; i < n; i++) {
		if (keep[i] < 0 || (unsigned)keep[i] < next)
			continue;
		if ((unsigned)keep[i] > next)
			close_span(next, (unsigned)keep[i] - 1);
		next = (unsigned)keep[i] + 1;
	}
	close_span(next, ~0u);
}

/* The child's last word: once the parent holds its pidfd (the parent's
 * end shuts down), the result.  Then it may exit. */
static void child_report(struct fork_priv *p, int r)
{
	/* A copy of the parent's end in another process of the host would
	 * keep the shutdown from showing if the parent died: look at the
	 * parent too. */
	struct pollfd pfd = { .fd = p->child_sock, .events = POLLIN };
	while (getppid() == p->parent && poll(&pfd, 1, 1000) == 0)
		;
	while (write(p->child_sock, &r, sizeof(r)) < 0 && errno == EINTR)
		;
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
	/* The directory: a named temporary's removal. */
	int keep[] = { e->sink.fd, e->sink.dirfd, p->child_sock };
	close_all_but(keep, (int)(sizeof(keep) / sizeof(keep[0])));
	/* The parent's pause ends after this; the fork is its bulk. */
	e->meta.pause_us = us_since(e->t_pause_ns);
	struct bgsnap_err *err = &p->shared->err;
	e->fw.err = err;
	uint64_t t0 = now_ns();
	/* The written set (incremental) is the parent's heap as it was at the
	 * fork: this copy of it is the child's own. */
	int r = incr_active(e) ? incr_write_dirty(e, &e->fw, 1) : engine_write_all(e, &e->fw, 1);
	if (!r) {
		for (size_t i = 0; i < e->state.count && !r; i++)
			r = fmtw_state(&e->fw, e->state.blobs[i].name, e->state.blobs[i].data,
			               e->state.blobs[i].len);
	}
	if (!r)
		r = fmtw_finish(&e->fw, &e->meta);
	if (!r && e->sink.owns_fd && fsync(e->sink.fd) < 0)
		r = err_sys(err, -errno, "fsync of the snapshot");
	p->shared->file_crc = e->fw.file_crc;
	engine_progress(e, &e->fw);
	atomic_store(&e->live->writer_us, us_since(t0));
	atomic_store(&e->live->extra_mem_peak, private_dirty_bytes());
	if (r && !err->code)
		err_set(err, r, "snapshot child failed: %s", strerror(-r));
	/* A parent that died cannot commit or remove a named temporary: do it
	 * here (an unnamed file goes with our descriptor). */
	if (getppid() != p->parent)
		sink_remove_temporary(&e->sink);
	child_report(p, r);
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

/* After the pause: takes hold of the child through a pidfd, then lets it
 * report.  A pidfd opened after the child died (killed from outside before
 * this) might name another process: the child's end of the socket, closed
 * only by its exit, tells.  Without a pidfd cancel cannot kill the child,
 * and the run ends when the child does. */
static int fork_launch(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	close(p->child_sock);
	p->child_sock = -1;
	int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	char c;
	if (fd >= 0 && !(recv(p->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN)) {
		close(fd);
		fd = -1;
	}
	pthread_mutex_lock(&p->lock);
	p->pidfd = fd;
	pthread_mutex_unlock(&p->lock);
	shutdown(p->sock, SHUT_WR);
	return 0;
}

/* Reads the child's result: 1 if it reported one (in *res), 0 if it ended
 * without a word (killed). */
static int read_result(struct fork_priv *p, int *res)
{
	size_t got = 0;
	while (got < sizeof(*res)) {
		ssize_t n = read(p->sock, (char *)res + got, sizeof(*res) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		got += (size_t)n;
	}
	return 1;
}

/* Waits for the child to end and reaps it if it is still ours to reap (a
 * host that ignores SIGCHLD or reaps children itself gets there first).
 * Returns 1 with *si filled when its end was seen, else 0. */
static int reap_child(struct fork_priv *p, siginfo_t *si)
{
	memset(si, 0, sizeof(*si));
	int seen = 0;
	if (p->pidfd >= 0) {
		/* Wait without reaping, so that cancel never signals a reaped
		 * child; reap under the lock cancel takes. */
		while (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&p->lock);
		seen = waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, si, WEXITED) == 0 && si->si_pid == p->pid;
		p->reaped = 1;
		pthread_mutex_unlock(&p->lock);
	} else {
		/* No pidfd: nobody signals the child; the pid is still ours
		 * unless someone else reaped it. */
		int status;
		if (waitpid(p->pid, &status, 0) == p->pid && WIFSIGNALED(status)) {
			si->si_code = CLD_KILLED;
			si->si_status = WTERMSIG(status);
			seen = 1;
		}
		pthread_mutex_lock(&p->lock);
		p->reaped = 1;
		pthread_mutex_unlock(&p->lock);
	}
	return seen;
}

static int fork_join(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	int res = 0;
	int reported = read_result(p, &res);
	siginfo_t si;
	int seen = reap_child(p, &si);

	if (reported && res == 0) {
		if (engine_cancelled(e))
			return -ECANCELED;
		/* The parent's writer wrote nothing: the file is the child's. */
		e->fw.file_crc = p->shared->file_crc;
		return sink_commit(&e->sink, &e->werr);
	}
	if (engine_cancelled(e) && !e->err.code)
		return -ECANCELED;
	if (p->shared->err.code)
		return engine_fail(e, p->shared->err.code, "%s", p->shared->err.msg);
	if (reported)
		return engine_fail(e, res < 0 ? res : -EIO, "the snapshot child process failed: %s",
		                   strerror(res < 0 ? -res : EIO));
	if (seen && (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED))
		return engine_fail(e, -EINTR, "the snapshot child process was killed by signal %d (%s)",
		                   si.si_status, strsignal(si.si_status));
	return engine_fail(e, -EIO, "the snapshot child process ended without reporting its result "
	                   "(killed?)");
}

static void fork_cancel(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->pidfd >= 0 && !p->reaped)
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	pthread_mutex_unlock(&p->lock);
}

static void fork_release(struct bgsnap_engine *e)
{
	struct fork_priv *p = e->method_priv;
	if (!p)
		return;
	if (p->shared)
		munmap(p->shared, sizeof(*p->shared));
	if (p->sock >= 0)
		close(p->sock);
	if (p->child_sock >= 0)
		close(p->child_sock);
	if (p->pidfd >= 0)
		close(p->pidfd);
	pthread_mutex_destroy(&p->lock);
	free(p);
	e->method_priv = NULL;
}

/* Nothing to abort: until the fork in protect there is no child. */
const struct method_ops method_fork_ops = {
	.method = BGSNAP_METHOD_FORK,
	.caps = METHOD_NO_SHARED_REGIONS | METHOD_SPLITS_HUGE_PAGES | METHOD_WRITES_IN_CHILD,
	.prepare = fork_prepare,
	.protect = fork_protect,
	.launch = fork_launch,
	.join = fork_join,
	.cancel = fork_cancel,
	.release = fork_release,
};
