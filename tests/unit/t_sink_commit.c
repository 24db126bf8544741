/*
 * t_sink_commit - how a path sink names its file.  Where the directory has
 * unnamed files (O_TMPFILE), nothing is visible while the file is written;
 * else exactly one hidden temporary is.  Commit to a free name leaves
 * exactly that file, mode 0600 under umask 0, 077 and 0277, with the bytes
 * written; commit over an existing file replaces it and leaves nothing
 * else; abort leaves the directory as it was, an existing file untouched;
 * a final name that is a directory is refused at open, and one that
 * becomes a directory while the file is written fails the commit with a
 * message naming the path and leaves no file; a relative path names the
 * directory current at open, whatever the current directory is at
 * commit.  All of it again with /proc hidden under an empty tmpfs in a
 * private mount namespace (root only), where the sink must fall back to
 * the named hidden temporary.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sink/sink.h"
#include "testutil.h"

#define LEN (3u << 20)

static uint8_t data[LEN];

/* The directory holds exactly `finals` (space separated, sorted as
 * tu_dir_entries lists them) and, when `tmp_of` is set, one hidden
 * temporary ".<tmp_of>.XXXXXX.tmp" besides. */
static void check_entries(const char *dir, const char *finals, const char *tmp_of, const char *what)
{
	char names[2048], rest[2048] = "", tmp[600] = "";
	int n = tu_dir_entries(dir, names, sizeof(names));
	CHECK(n >= 0, "%s: cannot list %s", what, dir);
	size_t pl = tmp_of ? strlen(tmp_of) + 2 : 0;
	if (n == 0)
		names[0] = '\0';
	for (char *save = NULL, *w = strtok_r(names, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		size_t wl = strlen(w);
		if (tmp_of && !*tmp && w[0] == '.' && strncmp(w + 1, tmp_of, pl - 2) == 0 && w[pl - 1] == '.' &&
		    wl == pl + 10 && strcmp(w + wl - 4, ".tmp") == 0) {
			snprintf(tmp, sizeof(tmp), "%s", w);
			continue;
		}
		snprintf(rest + strlen(rest), sizeof(rest) - strlen(rest), "%s%s", *rest ? " " : "", w);
	}
	CHECK(strcmp(rest, finals) == 0, "%s: the directory holds '%s'%s%s, expected '%s'", what, rest,
	      *tmp ? " and " : "", tmp, finals);
	CHECK(!tmp_of || *tmp, "%s: no hidden temporary for %s while it is written", what, tmp_of);
}

/* Opens a sink on `path`, writes `len` bytes of data; then, with the file
 * still open, the directory must hold `finals` and nothing else but, in
 * the named fallback, the hidden temporary of `name`. */
static void write_some(struct sink *s, const char *path, const char *dir, const char *name, int direct,
                       size_t len, int unnamed, const char *finals, const char *what)
{
	struct bgsnap_err err = { 0 };
	int r = sink_open_path(s, path, direct, &err);
	CHECK(r == 0, "%s: sink_open_path: %s", what, err.msg);
	r = sink_write(s, data, len, &err);
	CHECK(r == 0, "%s: sink_write: %s", what, err.msg);
	r = sink_flush(s, &err);
	CHECK(r == 0, "%s: sink_flush: %s", what, err.msg);
	check_entries(dir, finals, unnamed ? NULL : name, what);
}

static void cases(const char *dir, int direct, int unnamed, const char *label)
{
	char path[800], what[160];
	const char *mode = direct ? "direct" : "page cache";
	struct sink s;
	struct bgsnap_err err = { 0 };
	snprintf(path, sizeof(path), "%s/a.bgs", dir);

	/* A free name. */
	snprintf(what, sizeof(what), "%s, %s, new file", label, mode);
	write_some(&s, path, dir, "a.bgs", direct, LEN, unnamed, "", what);
	CHECK(sink_commit(&s, &err) == 0, "%s: sink_commit: %s", what, err.msg);
	tu_check_file(path, data, LEN, what);
	check_entries(dir, "a.bgs", NULL, what);

	/* Over an existing file: replaced, nothing else left. */
	snprintf(what, sizeof(what), "%s, %s, replacing a file", label, mode);
	write_some(&s, path, dir, "a.bgs", direct, LEN / 3, unnamed, "a.bgs", what);
	CHECK(sink_commit(&s, &err) == 0, "%s: sink_commit: %s", what, err.msg);
	tu_check_file(path, data, LEN / 3, what);
	check_entries(dir, "a.bgs", NULL, what);

	/* Abort: the existing file stays as it was. */
	snprintf(what, sizeof(what), "%s, %s, abort", label, mode);
	write_some(&s, path, dir, "a.bgs", direct, LEN, unnamed, "a.bgs", what);
	sink_abort(&s);
	tu_check_file(path, data, LEN / 3, what);
	check_entries(dir, "a.bgs", NULL, what);
	CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));

	/* The final name is a directory: refused at open. */
	snprintf(what, sizeof(what), "%s, %s, final name is a directory", label, mode);
	snprintf(path, sizeof(path), "%s/d.bgs", dir);
	CHECK(mkdir(path, 0700) == 0, "mkdir: %s", strerror(errno));
	int r = sink_open_path(&s, path, direct, &err);
	CHECK(r == -EISDIR, "%s: sink_open_path returned %s, expected -EISDIR", what, tu_errname(r));
	CHECK(rmdir(path) == 0, "rmdir: %s", strerror(errno));

	/* A directory takes the name while the file is written: commit fails
	 * with a message naming the path and leaves no file. */
	snprintf(what, sizeof(what), "%s, %s, a directory appears at the final name", label, mode);
	write_some(&s, path, dir, "d.bgs", direct, LEN, unnamed, "", what);
	CHECK(mkdir(path, 0700) == 0, "mkdir: %s", strerror(errno));
	memset(&err, 0, sizeof(err));   /* the first error sticks: drop the open's */
	r = sink_commit(&s, &err);
	CHECK(r < 0, "%s: sink_commit over a directory succeeded", what);
	CHECK(strstr(err.msg, path) != NULL, "%s: the message does not name %s: %s", what, path, err.msg);
	check_entries(dir, "d.bgs", NULL, what);
	struct stat st;
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s: the directory was replaced", what);
	CHECK(rmdir(path) == 0, "rmdir: %s", strerror(errno));

	/* A relative path, and a chdir between open and commit. */
	snprintf(what, sizeof(what), "%s, %s, relative path and a chdir", label, mode);
	char here[700], there[700];
	int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(cwd >= 0, "open .: %s", strerror(errno));
	snprintf(here, sizeof(here), "%s/here", dir);
	snprintf(there, sizeof(there), "%s/there", dir);
	CHECK(mkdir(here, 0700) == 0 && mkdir(there, 0700) == 0, "mkdir: %s", strerror(errno));
	CHECK(chdir(here) == 0, "chdir: %s", strerror(errno));
	write_some(&s, "r.bgs", here, "r.bgs", direct, LEN / 2, unnamed, "", what);
	CHECK(chdir(there) == 0, "chdir: %s", strerror(errno));
	CHECK(sink_commit(&s, &err) == 0, "%s: sink_commit: %s", what, err.msg);
	CHECK(fchdir(cwd) == 0, "fchdir: %s", strerror(errno));
	close(cwd);
	check_entries(there, "", NULL, what);
	snprintf(path, sizeof(path), "%s/r.bgs", here);
	tu_check_file(path, data, LEN / 2, what);
	check_entries(here, "r.bgs", NULL, what);
	CHECK(unlink(path) == 0 && rmdir(here) == 0 && rmdir(there) == 0, "cleanup: %s", strerror(errno));
}

static void all_cases(const char *dir, const char *label)
{
	int unnamed = tu_unnamed_files(dir);
	printf("    %s: %s\n", label, unnamed ? "unnamed files (O_TMPFILE)" : "named hidden temporaries");
	mode_t masks[3] = { 0, 077, 0277 };
	mode_t old = umask(0);
	for (int m = 0; m < 3; m++) {
		umask(masks[m]);
		for (int direct = 0; direct <= 1; direct++)
			cases(dir, direct, unnamed, label);
	}
	umask(old);
}

/* In a child: /proc hidden in a private mount namespace, so the sink
 * cannot name an unnamed file and must use a named temporary.  77: this
 * process may not do that. */
static int without_proc(const char *dir)
{
	int r = tu_hide_proc("without /proc", dir);
	if (r)
		return r;
	all_cases(dir, "without /proc");
	fflush(stdout);
	return 0;
}

int main(void)
{
	uint64_t x = 0x2545F4914F6CDD1Dull;
	for (size_t i = 0; i < LEN; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(data + i, &x, 8);
	}
	const char *dir = tu_tmpdir();
	all_cases(dir, "as mounted");
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(without_proc(dir));
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77),
	      "the cases without /proc failed (status 0x%x)", st);
	int fallback = WEXITSTATUS(st) == 0;
	printf("sink commit: new name, replacement, abort, a directory in the way, a relative path across a "
	       "chdir; direct and page cache, umask 0, 077 and 0277%s\n",
	       fallback ? "; and the named fallback without /proc" : "");
	return 0;
}
