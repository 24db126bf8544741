/*
 * t_err_enospc.c - a snapshot into a full file system fails cleanly, for
 * every method: a 16 MiB region into a 1 MiB tmpfs (mounted in a private
 * mount namespace) returns -ENOSPC with a message that says so, leaves no
 * file at all in that directory, leaves the memory writable and the writers
 * running, and the engine then snapshots into a roomy directory fine.
 * Skips when a mount namespace cannot be created (not root, no CAP_SYS_ADMIN).
 * timeout: 600
 */
#include <sched.h>
#include <sys/mount.h>

#include "snaptest.h"

#define MEM (16u << 20)

static char small[600];
static pid_t main_pid;

static int case_enospc(void *arg)
{
	int method = *(int *)arg;
	tu_dir_clear(small);
	char path[700], good[700];
	snprintf(path, sizeof(path), "%s/s.bgs", small);
	snprintf(good, sizeof(good), "%s/good.bgs", tu_tmpdir());

	/* Non-zero, incompressible content: zero-page records would fit. */
	struct st_busy b;
	st_busy_start(&b, method, MEM, 3, 0, 1u << 20, true);

	tu_phase("bgsnap_start into the full tmpfs");
	int r = bgsnap_start(b.e, path);
	tu_phase("bgsnap_wait into the full tmpfs");
	if (r == 0)
		r = bgsnap_wait(b.e);
	CHECK_RC(r, -ENOSPC, "snapshot of %u MiB into a 1 MiB tmpfs; message: %s", MEM >> 20, bgsnap_errmsg(b.e));
	const char *msg = bgsnap_errmsg(b.e);
	CHECK(strstr(msg, "No space left") || strstr(msg, "ENOSPC"),
	      "the message does not say the disk is full: %s", msg);
	CHECK_HOST_UNHARMED(&b, -ENOSPC, small, "a snapshot into a full disk");

	/* Same engine, a directory with room. */
	st_snapshot_ok(b.e, good);
	CHECK_FILE_REGION(good, "mem", b.copy, MEM);
	st_busy_stop(&b);
	return 0;
}

static void unmount_small(void)
{
	/* Forked cases inherit this handler and share the namespace: only
	 * the main process unmounts. */
	if (small[0] && getpid() == main_pid)
		umount2(small, MNT_DETACH);
}

int main(void)
{
	/* Before any thread exists: unshare(CLONE_NEWNS) needs an unshared fs. */
	if (unshare(CLONE_NEWNS) != 0)
		SKIP("cannot create a private mount namespace for a small tmpfs: %s", strerror(errno));
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		SKIP("cannot make mounts private: %s", strerror(errno));
	snprintf(small, sizeof(small), "%s/small", tu_tmpdir());
	CHECK(mkdir(small, 0700) == 0, "mkdir %s: %s", small, strerror(errno));
	if (mount("tmpfs", small, "tmpfs", 0, "size=1M,mode=0700") != 0)
		SKIP("cannot mount a 1 MiB tmpfs: %s", strerror(errno));
	/* atexit runs in reverse: unmount before the tmpdir is removed. */
	main_pid = getpid();
	atexit(unmount_small);

	struct tu_tally t = { 0 };
	st_for_each_method(&t, "enospc", case_enospc, ~0u, 20);
	tu_tally_exit(&t, "t_err_enospc");
}
