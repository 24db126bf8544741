/*
 * t_fault_kill.c - SIGKILL of the snapshotting process in the middle of a
 * snapshot never leaves a partial file under the final name, for every
 * method, and leaves no file at all where the file system has unnamed
 * files (O_TMPFILE).  (A kill that lands after the commit but before the
 * test saw the snapshot end leaves the whole snapshot, which must verify;
 * never while a fork writer child was still unreaped.)  A
 * "host" process maps 32 MiB, runs writer threads and starts a snapshot to
 * a path; the test kills it at a seeded random moment (0-20 ms) after
 * the pause, unless the snapshot already ended, then waits for
 * every descendant (the test is a child subreaper, so a fork method's
 * writer child, orphaned by the kill, is reparented to it) and checks the
 * directory.  Without O_TMPFILE the sink falls back to a named hidden
 * temporary, which a killed process cannot remove: then only those may be
 * left (one killed after its last write but before the rename is complete,
 * and still not committed; it is reported).
 * Set BGSNAP_FAULT_SEED to replay a run.
 * timeout: 600
 */
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "snaptest.h"

#define MEM (32u << 20)

struct shared {
	_Atomic int started, finished;
};

static uint64_t seed;
static struct shared *host_shared;

/* In the pause (save_state hook): every method has opened its file by now,
 * and stop writes it right after. */
static void mark_started(struct st_host *h, bgsnap_state *st)
{
	(void)h;
	(void)st;
	atomic_store(&host_shared->started, 1);
}


static void host(int method, const char *path, struct shared *sh)
{
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 71, 6);
	struct tu_writers w;
	tu_writers_start(&w, 2, m, MEM);
	struct st_host h = { .base = m, .len = MEM, .w = &w, .in_save = mark_started };
	host_shared = sh;
	bgsnap_engine *e = st_engine(method, 1u << 20);
	st_add_region(e, "mem", m, MEM);
	st_set_hooks(e, &h);
	int r = bgsnap_start(e, path);
	if (r == 0)
		r = bgsnap_wait(e);
	atomic_store(&sh->finished, r == 0 ? 1 : 2);
	_exit(0);
}

static int run(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));

	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		host(method, path, sh);
	/* Wait until the snapshot is on its way, then kill at a random moment
	 * up to 20 ms later. */
	tu_phase("waiting for the snapshot to start");
	uint64_t deadline = tu_now_ns() + 20000000000ull;
	while (!atomic_load(&sh->started) && !atomic_load(&sh->finished) && tu_now_ns() < deadline) {
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
	}
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	unsigned delay_us = (unsigned)((seed >> 33) % 20000);
	struct timespec ts = { 0, (long)delay_us * 1000 };
	nanosleep(&ts, NULL);
	int fin = atomic_load(&sh->finished);
	kill(pid, SIGKILL);
	tu_phase("reaping the killed host and its descendants");
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	if (fin)
		SKIP("the snapshot finished (result %d) before the kill at %u us: inconclusive", fin, delay_us);
	/* Orphaned descendants (a fork writer) end up here: wait for them all.
	 * One still unreaped by the host means the host had not committed. */
	int orphans = waitpid(-1, &st, WNOHANG) != -1;
	for (;;) {
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0 && errno == ECHILD)
			break;
		CHECK(p >= 0 || errno == EINTR, "waitpid: %s", strerror(errno));
	}
	char names[1024];
	int n = tu_dir_entries(dir, names, sizeof(names));
	printf("    killed %u us after the start; left in the directory: %s\n", delay_us, n ? names : "(nothing)");
	/* A kill after the commit but before `finished` was stored leaves a
	 * committed file, which must then be whole; otherwise nothing. */
	struct stat sb;
	CHECK(!orphans || stat(path, &sb) != 0,
	      "%s was committed while the fork method's writer child was still running", path);
	if (stat(path, &sb) == 0) {
		bgsnap_reader *rd = NULL;
		char err[256];
		CHECK(bgsnap_reader_open(&rd, path, err, sizeof(err)) == 0 && bgsnap_reader_verify(rd) == 0,
		      "a host killed in the middle of a snapshot left %s, which does not verify", path);
		bgsnap_reader_close(rd);
		printf("    the kill came after the commit: %s is complete\n", path);
		CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
		n = tu_dir_entries(dir, names, sizeof(names));
	}
	if (tu_unnamed_files(dir)) {
		CHECK(n == 0, "a host killed in the middle of a snapshot left files in a directory that has "
		      "unnamed files (O_TMPFILE): %s", names);
		return 0;
	}
	/* Only hidden temporaries may be left.  One can be complete: a kill
	 * between the trailer and the rename (the fsync is that window) leaves
	 * every byte written and nothing committed, which is what a reader of
	 * the final name must see; it is reported, not refused. */
	DIR *d = opendir(dir);
	CHECK(d != NULL, "opendir: %s", strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		size_t nl = strlen(de->d_name);
		CHECK(de->d_name[0] == '.' && nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0,
		      "leftover %s is not a hidden temporary", de->d_name);
		char p[900];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		bgsnap_reader *rd = NULL;
		char err[256];
		if (bgsnap_reader_open(&rd, p, err, sizeof(err)) == 0) {
			if (bgsnap_reader_verify(rd) == 0)
				printf("    %s is complete but was never committed (killed before the rename)\n",
				       de->d_name);
			bgsnap_reader_close(rd);
		}
	}
	closedir(d);
	return 0;
}

int main(void)
{
	seed = tu_seed();
	struct tu_tally t = { 0 };
	for (int round = 0; round < 3; round++) {
		char name[32];
		snprintf(name, sizeof(name), "sigkill-%d", round);
		st_for_each_method(&t, name, run, ~0u, 20);
		seed += 0x9e3779b97f4a7c15ull;
	}
	tu_tally_exit(&t, "t_fault_kill");
}
