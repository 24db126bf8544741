/*
 * cases.c - forked test cases, their watchdog and the tally (testutil.h):
 * each case runs in a child with a deadline, so that a hang or a crash in
 * one case is reported with where it was and does not stop the others.
 * libc only, as testutil.c.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- forked cases ---- */

static _Atomic(const char *) phase = "";

void tu_phase(const char *what)
{
	atomic_store(&phase, what);
}

static void put(const char *s)
{
	ssize_t w = write(2, s, strlen(s));
	(void)w;
}

/* Appends /proc/self/task/TID/FILE (first line) to the report.  Only
 * async-signal-safe calls (it may also run from a SIGALRM handler). */
static void put_task_file(const char *tid, const char *file)
{
	char p[96] = "/proc/self/task/";
	strcat(p, tid);
	strcat(p, "/");
	strcat(p, file);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return;
	char buf[160];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	put(" ");
	put(file);
	put("=");
	put(buf);
}

static void report_timeout(void)
{
	put("case timed out during: ");
	put(atomic_load(&phase));
	put("\nthreads (comm, kernel wait channel, syscall number and args):\n");
	int dfd = open("/proc/self/task", O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		char buf[4096];
		long n;
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *d =
					(void *)(buf + off);
				if (d->name[0] != '.') {
					put("  tid ");
					put(d->name);
					put_task_file(d->name, "comm");
					put_task_file(d->name, "wchan");
					put_task_file(d->name, "syscall");
					put("\n");
				}
				off += d->reclen;
			}
		}
		close(dfd);
	}
	_exit(124);
}

static void *watchdog(void *arg)
{
	unsigned secs = *(unsigned *)arg;
	/* Block every signal: a host signal handler must not run here. */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	tu_sleep_ms(secs * 1000u);
	report_timeout();
	return NULL;
}

/* Sanitizers slow everything down: scale case timeouts (or as told by
 * BGSNAP_TEST_TIMEOUT_SCALE). */
static unsigned timeout_scale(void)
{
	const char *s = getenv("BGSNAP_TEST_TIMEOUT_SCALE");
	if (s && atoi(s) > 0)
		return (unsigned)atoi(s);
#if defined(__SANITIZE_THREAD__)
	return 5;
#elif defined(__SANITIZE_ADDRESS__)
	return 3;
#else
	return 1;
#endif
}

/* Orphans of a case (a fork writer that outlived it) are reparented to us,
 * a child subreaper.  Waits up to 2 s for them to exit; returns how many
 * were still running (then killed and listed in `out`). */
static int reap_leftovers(char *out, size_t out_len)
{
	out[0] = '\0';
	uint64_t deadline = tu_now_ns() + 2000000000ull;
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0 && errno == ECHILD)
			return 0;
		if (p > 0)
			continue;
		if (tu_now_ns() > deadline)
			break;
		tu_sleep_ms(10);
	}
	int count = 0;
	size_t used = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		int pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		int ppid = 0;
		char state;
		if (!rp || sscanf(rp + 2, "%c %d", &state, &ppid) != 2 || ppid != getpid())
			continue;
		count++;
		char *lp = strchr(buf, '(');
		*rp = '\0';
		int w = snprintf(out + used, out_len - used, "%s%d (%s, state %c)", used ? ", " : "", pid,
		                 lp ? lp + 1 : "?", state);
		if (w > 0 && used + (size_t)w < out_len)
			used += (size_t)w;
		kill(pid, SIGKILL);
	}
	if (d)
		closedir(d);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	return count ? count : 0;
}

static char last_case[128];

int tu_run_case(const char *name, int (*fn)(void *), void *arg, unsigned timeout_s)
{
	snprintf(last_case, sizeof(last_case), "%s", name);
	timeout_s *= timeout_scale();
	tu_tmpdir();
	static bool subreaper;
	if (!subreaper) {
		prctl(PR_SET_CHILD_SUBREAPER, 1);
		subreaper = true;
	}
	fflush(stdout);
	fflush(stderr);
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		FAIL("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		tu_skip_fd = pfd[1];
		/* A watchdog thread reports a timeout while the stuck threads are
		 * still where they got stuck; SIGALRM is the backstop. */
		static unsigned wd_secs;
		wd_secs = timeout_s;
		pthread_t wd;
		if (pthread_create(&wd, NULL, watchdog, &wd_secs) == 0)
			pthread_detach(wd);
		alarm(timeout_s + 10);
		int rc = fn(arg);
		fflush(stdout);
		fflush(stderr);
		exit(rc);
	}
	close(pfd[1]);
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			FAIL("waitpid: %s", strerror(errno));
	}
	/* Non-blocking: a process the case left behind may hold the pipe. */
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	ssize_t n = read(pfd[0], tu_last_skip_reason, sizeof(tu_last_skip_reason) - 1);
	tu_last_skip_reason[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	char left[256];
	if (reap_leftovers(left, sizeof(left))) {
		printf("FAIL %s: the case left processes running after it ended (killed now): %s\n", name, left);
		fflush(stdout);
		return 1;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		printf("ok   %s\n", name);
		return 0;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		printf("skip %s: %s\n", name, tu_last_skip_reason);
		return 77;
	}
	if ((WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) || (WIFEXITED(st) && WEXITSTATUS(st) == 124))
		printf("FAIL %s: timed out after %u s (a thread blocked for good?)\n", name, timeout_s);
	else if (WIFSIGNALED(st))
		printf("FAIL %s: killed by signal %d (%s)\n", name, WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		printf("FAIL %s: exit status %d\n", name, WEXITSTATUS(st));
	fflush(stdout);
	return 1;
}

void tu_tally_skip(struct tu_tally *t, const char *reason)
{
	t->skip++;
	snprintf(t->skip_reason, sizeof(t->skip_reason), "%s", reason);
}

void tu_tally_add(struct tu_tally *t, int rc)
{
	if (rc == 0)
		t->pass++;
	else if (rc == 77)
		tu_tally_skip(t, tu_last_skip_reason);
	else {
		t->fail++;
		/* Named again in the summary: the last lines are what a runner shows. */
		size_t used = strlen(t->failed);
		snprintf(t->failed + used, sizeof(t->failed) - used, "%s%s", used ? " " : "", last_case);
	}
}

void tu_tally_exit(const struct tu_tally *t, const char *what)
{
	if (t->fail)
		printf("%s: failed cases: %s\n", what, t->failed);
	printf("%s: %d cases passed, %d failed, %d skipped\n", what, t->pass, t->fail, t->skip);
	fflush(stdout);
	if (t->fail)
		exit(1);
	if (t->pass == 0) {
		printf("%s: every case was skipped; last reason: %s\n", what, t->skip_reason);
		exit(77);
	}
	exit(0);
}
