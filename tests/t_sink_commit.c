/*
 * t_sink_commit - how a path sink names its file.  While it is written, the
 * directory shows nothing (an unnamed O_TMPFILE file) where the file system
 * has unnamed files; commit to a free name leaves exactly that file, mode
 * 0600 under umask 0 and 077, with the bytes written; commit over an
 * existing file replaces it and leaves nothing else; abort leaves the
 * directory as it was, an existing file untouched; a final name that is a
 * directory is refused at open, and one that becomes a directory while the
 * file is written fails the commit with a message naming the path and
 * leaves no file.  Where the directory has no unnamed files (the probe
 * says), the named temporaries are checked only after commit and abort.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sink.h"
#include "testutil.h"

#define LEN (3u << 20)

static uint8_t data[LEN];

/* The sink's own conditions for an unnamed file (see sink.c). */
static int unnamed_files(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	char lp[40];
	snprintf(lp, sizeof(lp), "/proc/self/fd/%d", fd);
	struct stat a, b;
	int ok = fstat(fd, &a) == 0 && stat(lp, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
	close(fd);
	return ok;
}

static void check_content(const char *path, const uint8_t *want, size_t len, const char *what)
{
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "%s: %s cannot be opened: %s", what, path, strerror(errno));
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && (size_t)st.st_size == len, "%s: %s is %lld bytes, expected %zu", what, path,
	      (long long)st.st_size, len);
	CHECK((st.st_mode & 07777) == 0600, "%s: mode %04o, expected 0600", what, (unsigned)(st.st_mode & 07777));
	uint8_t *got = malloc(len ? len : 1);
	CHECK(got != NULL, "malloc");
	size_t have = 0;
	while (have < len) {
		ssize_t r = read(fd, got + have, len - have);
		CHECK(r > 0, "%s: read: %s", what, r < 0 ? strerror(errno) : "early end of file");
		have += (size_t)r;
	}
	close(fd);
	CHECK(memcmp(got, want, len) == 0, "%s: %s does not hold the bytes written", what, path);
	free(got);
}

static void check_entries(const char *dir, const char *want, const char *what)
{
	char names[2048];
	int n = tu_dir_entries(dir, names, sizeof(names));
	CHECK(n >= 0, "%s: cannot list %s", what, dir);
	CHECK(strcmp(n ? names : "", want) == 0, "%s: the directory holds '%s', expected '%s'", what,
	      n ? names : "", want);
}

/* Opens a sink on dir/name, writes `len` bytes of data and, with the file
 * still open, checks the directory shows `during`. */
static void write_some(struct sink *s, const char *dir, const char *name, int direct, size_t len,
                       const char *during, const char *what)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct bgsnap_err err = { 0 };
	int r = sink_open_path(s, path, direct, &err);
	CHECK(r == 0, "%s: sink_open_path: %s", what, err.msg);
	r = sink_write(s, data, len, &err);
	CHECK(r == 0, "%s: sink_write: %s", what, err.msg);
	r = sink_flush(s, &err);
	CHECK(r == 0, "%s: sink_flush: %s", what, err.msg);
	if (during)
		check_entries(dir, during, what);
}

static void cases(const char *dir, int direct, int unnamed)
{
	char path[600], what[120];
	const char *mode = direct ? "direct" : "page cache";
	struct sink s;
	struct bgsnap_err err = { 0 };

	/* A free name. */
	snprintf(what, sizeof(what), "%s, new file", mode);
	write_some(&s, dir, "a.bgs", direct, LEN, unnamed ? "" : NULL, what);
	CHECK(sink_commit(&s, &err) == 0, "%s: sink_commit: %s", what, err.msg);
	snprintf(path, sizeof(path), "%s/a.bgs", dir);
	check_content(path, data, LEN, what);
	check_entries(dir, "a.bgs", what);

	/* Over an existing file: replaced, nothing else left. */
	snprintf(what, sizeof(what), "%s, replacing a file", mode);
	write_some(&s, dir, "a.bgs", direct, LEN / 3, unnamed ? "a.bgs" : NULL, what);
	CHECK(sink_commit(&s, &err) == 0, "%s: sink_commit: %s", what, err.msg);
	check_content(path, data, LEN / 3, what);
	check_entries(dir, "a.bgs", what);

	/* Abort: the existing file stays as it was. */
	snprintf(what, sizeof(what), "%s, abort", mode);
	write_some(&s, dir, "a.bgs", direct, LEN, unnamed ? "a.bgs" : NULL, what);
	sink_abort(&s);
	check_content(path, data, LEN / 3, what);
	check_entries(dir, "a.bgs", what);
	CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));

	/* The final name is a directory: refused at open. */
	snprintf(what, sizeof(what), "%s, final name is a directory", mode);
	snprintf(path, sizeof(path), "%s/d.bgs", dir);
	CHECK(mkdir(path, 0700) == 0, "mkdir: %s", strerror(errno));
	int r = sink_open_path(&s, path, direct, &err);
	CHECK(r == -EISDIR, "%s: sink_open_path returned %s, expected -EISDIR", what, tu_errname(r));
	CHECK(rmdir(path) == 0, "rmdir: %s", strerror(errno));

	/* A directory takes the name while the file is written: commit fails
	 * with a message naming the path and leaves no file. */
	snprintf(what, sizeof(what), "%s, a directory appears at the final name", mode);
	write_some(&s, dir, "d.bgs", direct, LEN, unnamed ? "" : NULL, what);
	CHECK(mkdir(path, 0700) == 0, "mkdir: %s", strerror(errno));
	memset(&err, 0, sizeof(err));   /* the first error sticks: drop the open's */
	r = sink_commit(&s, &err);
	CHECK(r < 0, "%s: sink_commit over a directory succeeded", what);
	CHECK(strstr(err.msg, "d.bgs") != NULL, "%s: the message does not name the path: %s", what, err.msg);
	printf("    %s: %s\n", what, err.msg);
	check_entries(dir, "d.bgs", what);
	struct stat st;
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s: the directory was replaced", what);
	CHECK(rmdir(path) == 0, "rmdir: %s", strerror(errno));
}

int main(void)
{
	uint64_t x = 0x2545F4914F6CDD1Dull;
	for (size_t i = 0; i < LEN; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(data + i, &x, 8);
	}
	const char *dir = tu_tmpdir();
	int unnamed = unnamed_files(dir);
	printf("    %s: %s\n", dir, unnamed ? "unnamed files (O_TMPFILE)" : "no O_TMPFILE: named hidden temporaries");
	mode_t masks[2] = { 0, 077 };
	for (int m = 0; m < 2; m++) {
		umask(masks[m]);
		for (int direct = 0; direct <= 1; direct++)
			cases(dir, direct, unnamed);
	}
	printf("sink commit: new name, replacement, abort and a directory in the way, direct and page cache, "
	       "umask 0 and 077%s\n", unnamed ? ", nothing visible while writing" : "");
	return 0;
}
