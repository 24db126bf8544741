/*
 * t_sink_long_name - a path sink takes any final name the directory takes:
 * names of 243 to 255 bytes (where ".<name>.XXXXXX.tmp" would exceed
 * NAME_MAX) are written as a new file and over an existing one, and leave
 * exactly that file with the bytes written; a name of 256 bytes is refused
 * at open with -ENAMETOOLONG, before any work, and leaves nothing.  Page
 * cache and O_DIRECT; again with /proc hidden in a private mount namespace
 * (root only), where every file starts under its hidden temporary name.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sink/sink.h"
#include "testutil.h"

#define LEN (1u << 20)

static uint8_t data[LEN];

/* The directory holds nothing but `name` (when not NULL). */
static void only(const char *dir, const char *name, const char *what)
{
	char names[4096];
	int n = tu_dir_entries(dir, names, sizeof(names));
	CHECK(n >= 0, "%s: cannot list %s", what, dir);
	if (!name) {
		CHECK(n == 0, "%s: the directory holds '%s', expected nothing", what, names);
		return;
	}
	CHECK(n == 1 && strcmp(names, name) == 0, "%s: the directory holds %d entries '%s', expected only the "
	      "final name", what, n, names);
}

static void one_length(const char *dir, size_t nl, int direct)
{
	char name[300], path[1200], what[160];
	memset(name, 'n', nl);
	name[nl] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	const char *mode = direct ? "direct" : "page cache";
	struct sink s;
	struct bgsnap_err err = { 0 };

	snprintf(what, sizeof(what), "%zu-byte name, %s, new file", nl, mode);
	CHECK_RC(sink_open_path(&s, path, direct, &err), 0, "%s: sink_open_path: %s", what, err.msg);
	CHECK_RC(sink_write(&s, data, LEN, &err), 0, "%s: sink_write: %s", what, err.msg);
	CHECK_RC(sink_commit(&s, &err), 0, "%s: sink_commit: %s", what, err.msg);
	tu_check_file(path, data, LEN, what);
	only(dir, name, what);

	snprintf(what, sizeof(what), "%zu-byte name, %s, replacing a file", nl, mode);
	CHECK_RC(sink_open_path(&s, path, direct, &err), 0, "%s: sink_open_path: %s", what, err.msg);
	CHECK_RC(sink_write(&s, data, LEN / 3, &err), 0, "%s: sink_write: %s", what, err.msg);
	CHECK_RC(sink_commit(&s, &err), 0, "%s: sink_commit: %s", what, err.msg);
	tu_check_file(path, data, LEN / 3, what);
	only(dir, name, what);
	CHECK(unlink(path) == 0, "%s: unlink: %s", what, strerror(errno));
}

static void all_lengths(const char *dir, const char *label)
{
	static const size_t lens[] = { 243, 244, 250, 254, 255 };
	for (int direct = 0; direct <= 1; direct++)
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
			one_length(dir, lens[i], direct);

	char name[300], path[1200];
	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct sink s;
	struct bgsnap_err err = { 0 };
	int r = sink_open_path(&s, path, 0, &err);
	CHECK(r == -ENAMETOOLONG, "%s: a 256-byte name: sink_open_path returned %s, expected -ENAMETOOLONG", label,
	      tu_errname(r));
	CHECK(strstr(err.msg, "longer than"), "%s: a 256-byte name: message '%s'", label, err.msg);
	only(dir, NULL, "after a 256-byte name");
	printf("    %s: 243..255-byte names written and replaced, 256 refused\n", label);
}

/* In a child: /proc hidden, so every file starts under a hidden name. */
static int without_proc(const char *dir)
{
	int r = tu_hide_proc("without /proc", dir);
	if (r)
		return r;
	all_lengths(dir, "without /proc (named temporaries)");
	fflush(stdout);
	return 0;
}

int main(void)
{
	for (size_t i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 13);
	const char *dir = tu_tmpdir();
	all_lengths(dir, tu_unnamed_files(dir) ? "as mounted (unnamed files)" : "as mounted (named temporaries)");
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(without_proc(dir));
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77),
	      "the cases without /proc failed (status 0x%x)", st);
	printf("t_sink_long_name: ok%s\n", WEXITSTATUS(st) == 0 ? "" : " (the named fallback was not tested)");
	return 0;
}
