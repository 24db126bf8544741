/*
 * t_sink_dir_fsync_fails - when the directory's fsync fails after commit
 * gave the file its final name, the result says what is true: the snapshot
 * is committed (complete, under its name, the old file replaced), so
 * sink_commit returns 0 and records the failure in dir_sync_error, and
 * through the public API bgsnap_wait returns 0 with state DONE and a file
 * the reader verifies.  A failed fsync of the file itself, before it is
 * named, still fails the commit and leaves no file.
 *
 * This program defines fsync(): the library's calls bind to it (a static
 * link prefers the program's definition), and it fails with EIO when armed
 * for a directory or for a regular file.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bgsnap.h"
#include "sink/sink.h"
#include "testutil.h"

#define LEN (1u << 20)

enum { ARM_NONE, ARM_DIR, ARM_FILE };
static _Atomic int armed;
static _Atomic int fired;

int fsync(int fd)
{
	struct stat st;
	int a = atomic_load(&armed);
	if (a != ARM_NONE && fstat(fd, &st) == 0 &&
	    ((a == ARM_DIR && S_ISDIR(st.st_mode)) || (a == ARM_FILE && S_ISREG(st.st_mode)))) {
		atomic_fetch_add(&fired, 1);
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

static uint8_t data[LEN];

static void only(const char *dir, const char *want, const char *what)
{
	char names[1024];
	int n = tu_dir_entries(dir, names, sizeof(names));
	CHECK(n >= 0, "%s: cannot list %s", what, dir);
	if (n == 0)
		names[0] = '\0';
	CHECK(strcmp(names, want) == 0, "%s: the directory holds '%s', expected '%s'", what, names, want);
}

static void sink_level(const char *dir)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	for (int round = 0; round < 2; round++) {
		const char *what = round ? "sink, replacing a file" : "sink, new file";
		size_t len = round ? LEN / 2 : LEN;
		struct sink s;
		struct bgsnap_err err = { 0 };
		CHECK_RC(sink_open_path(&s, path, 0, &err), 0, "%s: open: %s", what, err.msg);
		CHECK_RC(sink_write(&s, data, len, &err), 0, "%s: write: %s", what, err.msg);
		atomic_store(&fired, 0);
		atomic_store(&armed, ARM_DIR);
		int r = sink_commit(&s, &err);
		atomic_store(&armed, ARM_NONE);
		CHECK(atomic_load(&fired) > 0, "%s: the directory was never fsynced", what);
		CHECK(r == 0, "%s: commit returned %s (%s) although the file has its name", what, tu_errname(r),
		      err.msg);
		CHECK(s.dir_sync_error == -EIO, "%s: dir_sync_error is %s, expected -EIO", what,
		      tu_errname(s.dir_sync_error));
		tu_check_file(path, data, len, what);
		only(dir, "s.bgs", what);
	}

	/* The file's own fsync fails: not committed, the old file stays. */
	struct sink s;
	struct bgsnap_err err = { 0 };
	CHECK_RC(sink_open_path(&s, path, 0, &err), 0, "open: %s", err.msg);
	CHECK_RC(sink_write(&s, data, LEN, &err), 0, "write: %s", err.msg);
	atomic_store(&armed, ARM_FILE);
	int r = sink_commit(&s, &err);
	atomic_store(&armed, ARM_NONE);
	CHECK(r == -EIO, "file fsync fails: commit returned %s, expected -EIO", tu_errname(r));
	tu_check_file(path, data, LEN / 2, "file fsync fails: the old file");
	only(dir, "s.bgs", "file fsync fails");
	CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
}

static void engine_level(const char *dir)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/e.bgs", dir);
	uint8_t *mem = tu_map_anon(LEN);
	memcpy(mem, data, LEN);
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = BGSNAP_METHOD_STOP;
	bgsnap_engine *e;
	CHECK_RC(bgsnap_create(&e, &o), 0, "bgsnap_create");
	CHECK_RC(bgsnap_add_region(e, "mem", mem, LEN), 0, "add_region: %s", bgsnap_errmsg(e));
	atomic_store(&fired, 0);
	atomic_store(&armed, ARM_DIR);
	int r = bgsnap_start(e, path);
	if (r == 0)
		r = bgsnap_wait(e);
	atomic_store(&armed, ARM_NONE);
	CHECK(atomic_load(&fired) > 0, "engine: the directory was never fsynced");
	CHECK(r == 0, "engine: the snapshot returned %s (%s) although it is committed", tu_errname(r),
	      bgsnap_errmsg(e));
	struct bgsnap_stats st;
	CHECK_RC(bgsnap_get_stats(e, &st, sizeof(st)), 0, "get_stats");
	CHECK(st.state == BGSNAP_STATE_DONE && st.error == 0, "engine: state %d error %d, expected DONE and 0",
	      st.state, st.error);
	bgsnap_destroy(e);
	bgsnap_reader *rd;
	char msg[512];
	CHECK_RC(bgsnap_reader_open(&rd, path, msg, sizeof(msg)), 0, "engine: the file does not open: %s", msg);
	CHECK_RC(bgsnap_reader_verify(rd), 0, "engine: verify: %s", bgsnap_reader_errmsg(rd));
	static uint8_t back[LEN];
	CHECK_RC(bgsnap_reader_read_region(rd, 0, back, LEN, 0), 0, "read_region: %s", bgsnap_reader_errmsg(rd));
	CHECK(memcmp(back, data, LEN) == 0, "engine: the snapshot differs from the memory");
	bgsnap_reader_close(rd);
	only(dir, "e.bgs", "engine");
	CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
	munmap(mem, LEN);
}

int main(void)
{
	for (size_t i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 2654435761u >> 11);
	const char *dir = tu_tmpdir();
	sink_level(dir);
	engine_level(dir);
	printf("t_sink_dir_fsync_fails: a failed directory fsync after naming commits (0, dir_sync_error); a failed "
	       "file fsync does not\n");
	return 0;
}
