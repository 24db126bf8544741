/*
 * t_engine_threads.c - every thread the library starts is named "bgsnap-..."
 * and has the host's signals blocked, so that SIGINT, SIGTERM, SIGPIPE or a
 * timer meant for the host never lands in one of them: the engine's threads
 * during a snapshot (uffd: fault handler, writer) and the lazy restore's
 * (fault handler, prefetch) while it runs.
 * tags: concurrency
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (4u << 20)

/* Signals a host typically handles itself. */
static const int host_signals[] = { SIGINT, SIGTERM, SIGPIPE, SIGUSR1, SIGALRM, SIGCHLD };

/* Reads the thread's name and blocked-signal mask from /proc. */
static int thread_info(const char *tid, char *name, size_t name_len, unsigned long long *blocked)
{
	char path[320], line[256];
	snprintf(path, sizeof(path), "/proc/self/task/%s/comm", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;   /* the thread ended meanwhile */
	if (!fgets(name, (int)name_len, f))
		name[0] = '\0';
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
	if (!(f = fopen(path, "r")))
		return -1;
	int found = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigBlk: %llx", blocked) == 1)
			found = 1;
	fclose(f);
	return found ? 0 : -1;
}

/* Fails unless every thread named bgsnap-* blocks the host's signals and
 * the thread named `must` exists; the calling (host) thread blocks none. */
static void check_threads(const char *when, const char *must)
{
	DIR *d = opendir("/proc/self/task");
	CHECK(d != NULL, "opendir /proc/self/task: %s", strerror(errno));
	struct dirent *de;
	int seen_must = 0, lib_threads = 0;
	char self[32];
	snprintf(self, sizeof(self), "%d", (int)gettid());
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char name[64];
		unsigned long long blk = 0;
		if (thread_info(de->d_name, name, sizeof(name), &blk) < 0)
			continue;
		int lib = !strncmp(name, "bgsnap-", 7);
		for (size_t i = 0; i < sizeof(host_signals) / sizeof(host_signals[0]); i++) {
			int on = (int)(blk >> (host_signals[i] - 1) & 1);
			if (lib)
				CHECK(on, "%s: library thread %s (tid %s) can take %s (SigBlk %llx)", when, name,
				      de->d_name, strsignal(host_signals[i]), blk);
			else if (!strcmp(de->d_name, self))
				CHECK(!on, "%s: the test's own thread blocks %s: the check would prove nothing",
				      when, strsignal(host_signals[i]));
		}
		lib_threads += lib;
		seen_must |= !strcmp(name, must);
	}
	closedir(d);
	CHECK(seen_must, "%s: no thread named %s (%d bgsnap-* threads): unnamed library threads?", when, must,
	      lib_threads);
	printf("    %s: %d library threads, all with the host's signals blocked\n", when, lib_threads);
}

static void check_engine(void)
{
	char why[256] = "";
	if (bgsnap_method_probe(BGSNAP_METHOD_UFFD, why, sizeof(why)) < 0) {
		printf("engine threads not checked: uffd refused: %s\n", why);
		return;
	}
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 5, 0);
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_UFFD, 0);
	st_add_region(e, "mem", m, MEM);
	/* A pipe nobody reads yet: the writer blocks on it, so its threads are
	 * alive while we look. */
	int pfd[2];
	CHECK(pipe(pfd) == 0, "pipe: %s", strerror(errno));
	CHECK_RC(bgsnap_start_fd(e, pfd[1]), 0, "start_fd: %s", bgsnap_errmsg(e));
	check_threads("during a uffd snapshot", "bgsnap-writer");
	check_threads("during a uffd snapshot", "bgsnap-fault");
	/* Closing the reader makes the blocked write fail (EPIPE). */
	bgsnap_cancel(e);
	close(pfd[0]);
	int r = bgsnap_wait(e);
	CHECK(r == -ECANCELED || r == -EPIPE, "wait after cancel: %s", tu_errname(r));
	close(pfd[1]);
	bgsnap_destroy(e);
	munmap(m, MEM);
}

static void check_lazy(void)
{
	struct st_lazy z;
	if (st_lazy_start(&z, "s.bgs", MEM, 6) < 0) {
		printf("lazy restore threads not checked: %s\n", z.err);
	} else {
		/* The fault handler lives until bgsnap_lazy_wait. */
		check_threads("during a lazy restore", "bgsnap-lazy");
		st_lazy_finish(&z);
	}
	st_lazy_free(&z);
}

int main(void)
{
	/* The host's own thread: nothing blocked, as a host would run. */
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	check_engine();
	check_lazy();
	printf("ok\n");
	return 0;
}
