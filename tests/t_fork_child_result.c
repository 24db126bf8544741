/*
 * t_fork_child_result.c - the fork method learns its child's result
 * whatever the host does with SIGCHLD: with SIGCHLD ignored (the kernel
 * reaps children at once) and with a host whose SIGCHLD handler reaps every
 * child itself,
 *  - a child that fails (RLIMIT_FSIZE: write fails with EFBIG) makes
 *    bgsnap_wait return -EFBIG and leaves no file under the final name;
 *  - a child killed midway (SIGXFSZ at its default action) makes
 *    bgsnap_wait fail and leaves no file;
 *  - a child that succeeds still commits a file whose content verifies.
 * timeout: 120
 */
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "snaptest.h"

#define MEM (4u << 20)
#define FSIZE_LIMIT (64u << 10)  /* the header fits, the pages do not */

enum sigchld_mode { IGNORED, HOST_REAPS };
enum child_fate { SUCCEEDS, FAILS_EFBIG, KILLED };

struct scenario {
	enum sigchld_mode mode;
	enum child_fate fate;
};

static void reap_all(int sig)
{
	(void)sig;
	int saved = errno;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static void set_sigchld(enum sigchld_mode mode)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	if (mode == IGNORED) {
		sa.sa_handler = SIG_IGN;
	} else {
		sa.sa_handler = reap_all;
		sa.sa_flags = SA_RESTART;
	}
	CHECK(sigaction(SIGCHLD, &sa, NULL) == 0, "sigaction(SIGCHLD): %s", strerror(errno));
}

static int case_fork(void *arg)
{
	const struct scenario *sc = arg;
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	set_sigchld(sc->mode);

	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 5, 0);
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_FORK, 0);
	st_add_region(e, "mem", m, MEM);
	if (sc->fate == SUCCEEDS) {
		st_snapshot_ok(e, path);
		CHECK_FILE_REGION(path, "mem", m, MEM);
		bgsnap_destroy(e);
		return 0;
	}
	/* The child inherits both: its writes stop at FSIZE_LIMIT, with EFBIG
	 * (SIGXFSZ ignored) or killed by SIGXFSZ. */
	signal(SIGXFSZ, sc->fate == FAILS_EFBIG ? SIG_IGN : SIG_DFL);
	struct rlimit old, low;
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit: %s", strerror(errno));
	low = old;
	low.rlim_cur = FSIZE_LIMIT;
	CHECK(setrlimit(RLIMIT_FSIZE, &low) == 0, "setrlimit(RLIMIT_FSIZE): %s", strerror(errno));
	tu_phase("a fork snapshot whose child cannot write the file");
	int r = bgsnap_start(e, path);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0, "setrlimit back: %s", strerror(errno));
	CHECK_RC(r, 0, "bgsnap_start (the child fails later)");
	r = bgsnap_wait(e);
	if (sc->fate == FAILS_EFBIG)
		CHECK_RC(r, -EFBIG, "bgsnap_wait of a child that could not write");
	else
		CHECK(r < 0 && r != -ECANCELED, "bgsnap_wait of a child killed midway returned %s", tu_errname(r));
	CHECK_ERRMSG(e);
	CHECK_DIR_COUNT(dir, 0, "a failed fork snapshot left a file");
	CHECK_WRITABLE("region after the failed snapshot", m, MEM);
	bgsnap_destroy(e);
	return 0;
}

int main(void)
{
	if (!st_method_selected(BGSNAP_METHOD_FORK))
		SKIP("the fork method is not selected (BGSNAP_TEST_METHODS)");
	static const char *mode_name[] = { "sigchld_ignored", "host_reaps" };
	static const char *fate_name[] = { "succeeds", "fails_efbig", "killed" };
	struct tu_tally t = { 0 };
	for (int mode = IGNORED; mode <= HOST_REAPS; mode++) {
		for (int fate = SUCCEEDS; fate <= KILLED; fate++) {
			struct scenario sc = { (enum sigchld_mode)mode, (enum child_fate)fate };
			char name[80];
			snprintf(name, sizeof(name), "fork/%s/child_%s", mode_name[mode], fate_name[fate]);
			tu_tally_add(&t, tu_run_case(name, case_fork, &sc, 60));
		}
	}
	tu_tally_exit(&t, "t_fork_child_result");
}
