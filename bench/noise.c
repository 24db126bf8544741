/* noise.c - `bgsnap bench --noise`: another process that keeps writing its
 * own memory while a snapshot runs, to show what a workload running beside
 * a save costs the save on this machine. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/*
 * The --noise process: its own `bytes` of anonymous memory, filled, then one
 * byte written in a random page at a time until it is killed.  Forked from
 * a process with running threads, it uses only system calls and plain
 * memory.  Returns the pid once it writes, or -errno.
 */
pid_t noise_start(uint64_t bytes, bool thp)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int er = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return er;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(pfd[0]);
		uint8_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			_exit(1);
		madvise(m, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		memset(m, 1, bytes);
		char c = 1;
		if (write(pfd[1], &c, 1) != 1)
			_exit(1);
		uint64_t x = 0x9E3779B97F4A7C15ull, pages = bytes / 4096;
		for (;;) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			m[(x % pages) * 4096 + (x >> 52)]++;
		}
	}
	close(pfd[1]);
	char c;
	ssize_t n;
	while ((n = read(pfd[0], &c, 1)) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	if (n != 1) {
		waitpid(pid, NULL, 0);
		return -ENOMEM;
	}
	return pid;
}

void noise_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}
