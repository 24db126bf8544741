/*
 * t_err_writer_thread.c - when the background writer thread cannot be
 * started, bgsnap_start fails with -EAGAIN (never "started" with nothing
 * behind it): no file is left, the engine's descriptors (the O_TMPFILE
 * file, its directory, the method's) are closed on return, the region is
 * writable, bgsnap_wait reports the same error, and the engine still takes
 * a good snapshot afterwards.  The host keeps two writer threads busy.
 * Every tracking method (fork and stop start no thread after the pause).
 *
 * How the thread start is made to fail: in the resume hook, the last thing
 * before the writer starts, the host thread takes a non-root real uid
 * (setresuid on this thread alone; the effective uid stays 0 so files are
 * still ours), drops CAP_SYS_RESOURCE and CAP_SYS_ADMIN from its effective
 * set and sets RLIMIT_NPROC to 0: the kernel's clone() then refuses any new
 * task with EAGAIN (the threads this uid has are already over the limit),
 * whatever the thread stack cache or the sanitizer runtime do.  All of it
 * is undone as soon as bgsnap_start returns.  Needs root (skips otherwise).
 * timeout: 120
 * tags: concurrency
 */
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "snaptest.h"

#define MEM (4u << 20)
#define NOBODY 65534

struct saved {
	struct __user_cap_data_struct caps[2];
	struct rlimit nproc;
	int armed;
};

static void caps_get(struct __user_cap_data_struct caps[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	CHECK(syscall(SYS_capget, &h, caps) == 0, "capget: %s", strerror(errno));
}

static int caps_set(const struct __user_cap_data_struct caps[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	return (int)syscall(SYS_capset, &h, caps);
}

/* The resume hook: resume the host, then forbid new tasks to this thread. */
static void resume_and_forbid_threads(void *ctx)
{
	struct st_host *h = ctx;
	st_resume(h);
	struct saved *sv = h->user;
	caps_get(sv->caps);
	CHECK(getrlimit(RLIMIT_NPROC, &sv->nproc) == 0, "getrlimit: %s", strerror(errno));
	/* The raw calls change this thread only. */
	CHECK(syscall(SYS_setresuid, NOBODY, -1, -1) == 0, "setresuid: %s", strerror(errno));
	struct __user_cap_data_struct c[2] = { sv->caps[0], sv->caps[1] };
	c[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
	c[CAP_SYS_ADMIN / 32].effective &= ~(1u << (CAP_SYS_ADMIN % 32));
	CHECK(caps_set(c) == 0, "capset: %s", strerror(errno));
	struct rlimit none = { 0, sv->nproc.rlim_max };
	CHECK(setrlimit(RLIMIT_NPROC, &none) == 0, "setrlimit(RLIMIT_NPROC): %s", strerror(errno));
	sv->armed = 1;
}

static void allow_threads(struct saved *sv)
{
	if (!sv->armed)
		return;
	CHECK(caps_set(sv->caps) == 0, "capset back: %s", strerror(errno));
	CHECK(setrlimit(RLIMIT_NPROC, &sv->nproc) == 0, "setrlimit back: %s", strerror(errno));
	CHECK(syscall(SYS_setresuid, 0, -1, -1) == 0, "setresuid back: %s", strerror(errno));
	sv->armed = 0;
}

static int case_writer_thread(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	int fds_before = tu_count_fds();
	struct st_busy b;
	st_busy_start(&b, method, MEM, 3, 7, 0, true);
	struct saved sv = { .armed = 0 };
	b.h.user = &sv;
	struct bgsnap_hooks hk = { .pause = st_pause, .save_state = st_save, .resume = resume_and_forbid_threads,
	                           .ctx = &b.h };
	CHECK_RC(bgsnap_set_hooks(b.e, &hk), 0, "set_hooks");

	tu_phase("bgsnap_start whose writer thread cannot start");
	int r = bgsnap_start(b.e, path);
	allow_threads(&sv);
	CHECK(atomic_load(&b.h.resume_calls) == 1, "resume ran %d times", atomic_load(&b.h.resume_calls));
	if (r == 0) {
		int w = bgsnap_wait(b.e);
		FAIL("bgsnap_start returned 0 although the writer thread could not start "
		     "(bgsnap_wait then returned %s; the directory holds %d entries)", tu_errname(w),
		     tu_dir_entries(dir, NULL, 0));
	}
	CHECK_RC(r, -EAGAIN, "bgsnap_start with no thread allowed");
	CHECK_HOST_UNHARMED(&b, -EAGAIN, dir, "the failed start");
	CHECK(tu_count_fds() == fds_before, "%d descriptors open after the failed start, %d before it",
	      tu_count_fds(), fds_before);
	CHECK_RC(bgsnap_wait(b.e), -EAGAIN, "bgsnap_wait after the failed start");

	/* The same engine, threads allowed again. */
	st_set_hooks(b.e, &b.h);
	st_snapshot_ok(b.e, path);
	CHECK_FILE_REGION(path, "mem", b.copy, MEM);
	st_busy_stop(&b);
	CHECK(unlink(path) == 0, "unlink: %s", strerror(errno));
	CHECK(tu_count_fds() == fds_before, "%d descriptors open after bgsnap_destroy, %d before create",
	      tu_count_fds(), fds_before);
	return 0;
}

int main(void)
{
	if (geteuid() != 0)
		SKIP("needs root: the thread start is made to fail with RLIMIT_NPROC under another uid");
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "writer_thread", case_writer_thread, ST_MASK_TRACKING, 60);
	tu_tally_exit(&t, "t_err_writer_thread");
}
