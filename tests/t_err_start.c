/*
 * t_err_start.c - misuse of the start/wait life cycle is refused cleanly,
 * for every method: start with no region (-EINVAL, no file), wait and cancel
 * with nothing started, a path in a missing directory (-ENOENT, message names
 * the path), a closed fd (fails, nothing left protected); after each refusal
 * the same engine still takes a good snapshot.  Also the method name table
 * and bad options.
 */
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (1u << 20)

static int case_lifecycle(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);

	bgsnap_engine *e = st_engine(method, 0);
	CHECK_RC(bgsnap_wait(e), -EINVAL, "wait before any start");
	/* Cancel with nothing running: harmless whatever it returns. */
	int c = bgsnap_cancel(e);
	CHECK(c == 0 || c == -EINVAL, "cancel with nothing running returned %s", tu_errname(c));
	CHECK_RC(bgsnap_start(e, path), -EINVAL, "start with no region");
	CHECK_ERRMSG(e);
	CHECK_DIR_COUNT(dir, 0, "start with no region left a file");
	int pfd[2];
	CHECK(pipe(pfd) == 0, "pipe: %s", strerror(errno));
	CHECK_RC(bgsnap_start_fd(e, pfd[1]), -EINVAL, "start_fd with no region");
	close(pfd[0]);
	close(pfd[1]);

	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 7, 3);
	st_add_region(e, "mem", m, MEM);

	/* A directory that does not exist. */
	char bad[700];
	snprintf(bad, sizeof(bad), "%s/no-such-dir/s.bgs", dir);
	int r = bgsnap_start(e, bad);
	if (r == 0)
		r = bgsnap_wait(e);
	CHECK_RC(r, -ENOENT, "snapshot into a missing directory");
	CHECK(strstr(bgsnap_errmsg(e), "no-such-dir") != NULL, "the message does not name the path: %s",
	      bgsnap_errmsg(e));
	CHECK_ERRMSG(e);
	CHECK_WRITABLE("region after a failed start", m, MEM);

	/* A closed descriptor: must fail at start or at wait, never succeed. */
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open /dev/null: %s", strerror(errno));
	close(fd);
	r = bgsnap_start_fd(e, fd);
	if (r == 0)
		r = bgsnap_wait(e);
	CHECK_RC(r, -EBADF, "snapshot to a closed fd");
	CHECK_ERRMSG(e);
	CHECK_WRITABLE("region after writing to a closed fd failed", m, MEM);
	CHECK(tu_no_children(), "a child process was left unreaped");

	/* The engine is still usable. */
	st_snapshot_ok(e, path);
	CHECK_DIR_COUNT(dir, 1, "one snapshot, one file");
	/* Wait after the snapshot was collected: nothing is running. */
	r = bgsnap_wait(e);
	CHECK(r == -EINVAL || r == 0, "second wait returned %s", tu_errname(r));
	bgsnap_destroy(e);
	return 0;
}

int main(void)
{
	/* Method names round-trip; bad names and values are refused. */
	for (int m = 0; m < BGSNAP_METHOD_COUNT_; m++) {
		const char *n = bgsnap_method_name(m);
		CHECK(n != NULL, "method %d has no name", m);
		CHECK_RC(bgsnap_method_parse(n), m, "parse(\"%s\")", n);
	}
	CHECK(bgsnap_method_name(-1) == NULL, "name(-1) is not NULL");
	CHECK(bgsnap_method_name(BGSNAP_METHOD_COUNT_) == NULL, "name(COUNT) is not NULL");
	CHECK_RC(bgsnap_method_parse("bogus"), -EINVAL, "parse(bogus)");
	CHECK_RC(bgsnap_method_parse(""), -EINVAL, "parse(\"\")");
	char why[256] = "";
	CHECK(bgsnap_method_probe(BGSNAP_METHOD_COUNT_ + 3, why, sizeof(why)) < 0, "probe of a bad method accepted");
	CHECK(bgsnap_version() && bgsnap_version()[0], "no version string");

	struct bgsnap_options o;
	bgsnap_options_init(&o);
	CHECK(o.method == BGSNAP_METHOD_AUTO, "default method is %d, not AUTO", o.method);
	CHECK(o.copy_buffer_bytes >= TU_PAGE, "default copy buffer %zu is below one page", o.copy_buffer_bytes);
	o.method = BGSNAP_METHOD_COUNT_ + 1;
	bgsnap_engine *e = (bgsnap_engine *)&o; /* must be reset to NULL or left alone */
	int r = bgsnap_create(&e, &o);
	CHECK_RC(r, -EINVAL, "create with method %d", o.method);
	o.method = -1;
	CHECK_RC(bgsnap_create(&e, &o), -EINVAL, "create with method -1");
	CHECK_RC(bgsnap_create(&e, NULL), 0, "create with default options");
	bgsnap_destroy(e);

	struct tu_tally t = { 0 };
	st_for_each_method(&t, "lifecycle", case_lifecycle, ~0u, 20);
	tu_tally_exit(&t, "t_err_start");
}
