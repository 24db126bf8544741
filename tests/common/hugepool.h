/*
 * hugepool.h - free huge pages for a test: the pool of one huge page size
 * is raised (as root) until enough pages are free, and put back to what it
 * was at exit, on SIGTERM or SIGINT, or by hp_put_back().  Only the
 * process that raised it puts it back (test cases run in forked children).
 */
#ifndef BGSNAP_HUGEPOOL_H
#define BGSNAP_HUGEPOOL_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char hp_pool_path[96];
static char hp_old_text[32];
static long hp_old_pool = -1;
static pid_t hp_owner;

static inline long hp_read_long(const char *path)
{
	char buf[32] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static inline int hp_write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Async-signal-safe (open, write, close). */
static inline void hp_put_back(void)
{
	if (hp_old_pool >= 0 && getpid() == hp_owner) {
		hp_write_text(hp_pool_path, hp_old_text);
		hp_old_pool = -1;
	}
}

static inline void hp_on_signal(int sig)
{
	hp_put_back();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Makes `need` pages of the size whose sysfs directory is `dir` (e.g.
 * "/sys/kernel/mm/hugepages/hugepages-2048kB") free, raising the pool if
 * root.  Returns the free pages, at least `min_ok`; or -1 with the reason
 * in `why` (no such size, not root and too few free, the kernel gave too
 * few: the pool is then already put back).
 */
static inline long hp_reserve(const char *dir, long need, long min_ok, char *why, size_t why_len)
{
	char free_path[sizeof(hp_pool_path)];
	snprintf(hp_pool_path, sizeof(hp_pool_path), "%s/nr_hugepages", dir);
	snprintf(free_path, sizeof(free_path), "%s/free_hugepages", dir);
	long pool = hp_read_long(hp_pool_path), free_now = hp_read_long(free_path);
	if (pool < 0 || free_now < 0) {
		snprintf(why, why_len, "this machine has no such huge pages (%s not readable)", hp_pool_path);
		return -1;
	}
	if (free_now >= need || (geteuid() != 0 && free_now >= min_ok))
		return free_now;
	if (geteuid() != 0) {
		snprintf(why, why_len, "%ld free huge pages, %ld needed, and not root to reserve them (echo N > %s)",
		         free_now, min_ok, hp_pool_path);
		return -1;
	}
	snprintf(hp_old_text, sizeof(hp_old_text), "%ld\n", pool);
	hp_owner = getpid();
	hp_old_pool = pool;
	atexit(hp_put_back);
	signal(SIGTERM, hp_on_signal);
	signal(SIGINT, hp_on_signal);
	char text[32];
	snprintf(text, sizeof(text), "%ld\n", pool + need - free_now);
	(void)hp_write_text(hp_pool_path, text);
	long got = hp_read_long(free_path);
	if (got < min_ok) {
		hp_put_back();
		snprintf(why, why_len, "the kernel gave only %ld free huge pages of the %ld needed (wrote %ld to %s: "
		         "memory too fragmented?)", got, min_ok, pool + need - free_now, hp_pool_path);
		return -1;
	}
	return got;
}

#endif
