/*
 * t_sink_direct - a path sink writes exactly the bytes it was given, in
 * order, whether its stages go out with O_DIRECT from the writing thread,
 * with O_DIRECT from the caller, or through the page cache: chunks of 1 byte
 * to 3 MiB with explicit flushes at random points (each leaves the file
 * offset unaligned, so the next stages start skewed), then commit, then the
 * file is read back and compared byte for byte.  Then a fork child takes
 * over a direct sink as the fork method's child does (sink_in_child) and its
 * bytes land after the parent's.  And a full file system (a 1 MiB tmpfs in a
 * private mount namespace, root only) makes the writes fail with -ENOSPC
 * (from the thread where tmpfs takes O_DIRECT, Linux 6.6+), reported to the
 * caller with an offset, with no file left behind.  The page-cache check of
 * the direct cases is skipped where TMPDIR is a tmpfs (it caches direct
 * writes too).
 *
 * tags: concurrency
 */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sink/sink.h"
#include "testutil.h"

#define TOTAL (40u << 20)

static uint8_t *expected;

static void fill_expected(void)
{
	expected = malloc(TOTAL);
	CHECK(expected != NULL, "malloc");
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < TOTAL; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(expected + i, &x, 8);
	}
}

/* Pages of the file in the page cache: direct writes leave none behind. */
static size_t cached_pages(const char *path)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s", path);
	void *m = mmap(NULL, TOTAL, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED, "mmap %s: %s", path, strerror(errno));
	unsigned char *vec = malloc(TOTAL / TU_PAGE);
	CHECK(mincore(m, TOTAL, vec) == 0, "mincore: %s", strerror(errno));
	size_t n = 0;
	for (size_t i = 0; i < TOTAL / TU_PAGE; i++)
		n += vec[i] & 1;
	free(vec);
	munmap(m, TOTAL);
	close(fd);
	return n;
}

/* tmpfs takes O_DIRECT (Linux 6.6+) but keeps every page in memory. */
static int page_cache_direct(const char *dir)
{
	struct statfs f;
	return statfs(dir, &f) == 0 && f.f_type == TMPFS_MAGIC;
}

/* Writes TOTAL bytes in random chunks, flushing at random points; returns
 * the number of flushes. */
static size_t write_random(struct sink *s, uint64_t seed, int flushes, const char *what)
{
	size_t nflush = 0;
	struct bgsnap_err err = { 0 };
	size_t off = 0;
	uint64_t x = seed;
	while (off < TOTAL) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = (x >> 16) % 4 == 0 ? 1 + x % 64 : 1 + (size_t)((x >> 8) % (3u << 20));
		n = n < TOTAL - off ? n : TOTAL - off;
		/* Sometimes as two iovecs, as the encoder does. */
		if (n > 1 && (x & 1)) {
			struct iovec v[2] = { { expected + off, n / 2 }, { expected + off + n / 2, n - n / 2 } };
			CHECK_RC(sink_writev(s, v, 2, &err), 0, "%s: writev at %zu: %s", what, off, err.msg);
		} else {
			CHECK_RC(sink_write(s, expected + off, n, &err), 0, "%s: write at %zu: %s", what, off, err.msg);
		}
		off += n;
		if (flushes && (x >> 40) % 8 == 0) {
			CHECK_RC(sink_flush(s, &err), 0, "%s: flush at %zu: %s", what, off, err.msg);
			nflush++;
		}
	}
	return nflush;
}

static void one(const char *dir, int direct, int async, int flushes, const char *what)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/sink-%d%d%d.bin", dir, direct, async, flushes);
	struct sink s;
	struct bgsnap_err err = { 0 };
	CHECK_RC(sink_open_path(&s, path, direct, &err), 0, "%s: open: %s", what, err.msg);
	if (direct && s.dfd < 0)
		SKIP("the file system of %s refuses O_DIRECT: the direct path cannot be tested here", dir);
	CHECK(direct || s.dfd < 0, "%s: O_DIRECT descriptor opened although not asked for", what);
	sink_set_async(&s, async);
	size_t nflush = write_random(&s, 88172645463325252ull + (uint64_t)(direct * 4 + async * 2 + flushes),
	                             flushes, what);
	CHECK(!async || s.aio != NULL, "%s: the writing thread never started", what);
	CHECK_RC(sink_commit(&s, &err), 0, "%s: commit: %s", what, err.msg);
	/* Only the unaligned ends go through the page cache: a flush leaves
	 * its last partial page there and the next stage's head completes it. */
	size_t cached = direct && !page_cache_direct(dir) ? cached_pages(path) : 0;
	CHECK(cached <= 2 * (nflush + 2), "%s: %zu pages of the file went through the page cache, expected at "
	      "most %zu for %zu flushes: the stages were not written direct", what, cached, 2 * (nflush + 2), nflush);
	tu_check_file(path, expected, TOTAL, what);
	unlink(path);
}

static void fork_child(const char *dir)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/sink-fork.bin", dir);
	struct sink s;
	struct bgsnap_err err = { 0 };
	CHECK_RC(sink_open_path(&s, path, 1, &err), 0, "fork: open: %s", err.msg);
	sink_set_async(&s, 0);
	size_t head = 12345;
	CHECK_RC(sink_write(&s, expected, head, &err), 0, "fork: header");
	CHECK_RC(sink_flush(&s, &err), 0, "fork: header flush: %s", err.msg);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* As the fork method's child: the O_DIRECT descriptor is closed
		 * (close_all_but), so a sink that still used it would fail. */
		int dfd = s.dfd;
		sink_in_child(&s);
		close(dfd);
		struct bgsnap_err e2 = { 0 };
		int r = sink_write(&s, expected + head, TOTAL - head, &e2);
		if (!r)
			r = sink_flush(&s, &e2);
		if (!r && fsync(s.fd) < 0)
			r = -errno;
		_exit(r ? 1 : 0);
	}
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "fork: the child failed to write (status 0x%x)", status);
	CHECK_RC(sink_commit(&s, &err), 0, "fork: commit: %s", err.msg);
	tu_check_file(path, expected, TOTAL, "fork child after a direct header");
	unlink(path);
}

static int dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n == 0;
}

/* In a child: a private mount namespace with a 1 MiB tmpfs. */
static void enospc(void)
{
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		char dir[600];
		snprintf(dir, sizeof(dir), "%s/small", tu_tmpdir());
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(77);
		mkdir(dir, 0700);
		if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") < 0)
			_exit(77);
		struct sink s;
		struct bgsnap_err err = { 0 };
		char path[700];
		snprintf(path, sizeof(path), "%s/s.bin", dir);
		CHECK_RC(sink_open_path(&s, path, 1, &err), 0, "enospc: open: %s", err.msg);
		if (s.dfd < 0)
			printf("enospc: this tmpfs refuses O_DIRECT: the page-cache path is what fails here\n");
		sink_set_async(&s, 1);
		int r = 0;
		for (size_t off = 0; off < (8u << 20) && !r; off += 65536)
			r = sink_write(&s, expected + off, 65536, &err);
		if (!r)
			r = sink_commit(&s, &err);
		else
			sink_abort(&s);
		CHECK_RC(r, -ENOSPC, "8 MiB into a 1 MiB tmpfs%s; message: %s", s.dfd >= 0 ? " (O_DIRECT)" : "",
		         err.msg);
		CHECK(strstr(err.msg, "offset") != NULL, "the message names no offset: %s", err.msg);
		CHECK(dir_is_empty(dir), "a file was left behind in %s", dir);
		umount2(dir, MNT_DETACH);
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		printf("enospc case skipped: no private mount namespace here (needs root)\n");
		return;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the ENOSPC case failed (status 0x%x)", status);
}

int main(void)
{
	fill_expected();
	const char *dir = tu_tmpdir();
	for (int direct = 0; direct <= 1; direct++)
		for (int async = 0; async <= direct; async++)
			for (int flushes = 0; flushes <= 1; flushes++) {
				char what[80];
				snprintf(what, sizeof(what), "%s%s%s", direct ? "direct" : "page cache",
				         async ? ", thread" : "", flushes ? ", with flushes" : "");
				one(dir, direct, async, flushes, what);
			}
	fork_child(dir);
	enospc();
	printf("sink: %u MiB written in random chunks, direct (thread and caller) and through the page cache, "
	       "with and without flushes, and by a fork child: byte for byte\n", TOTAL >> 20);
	free(expected);
	return 0;
}
