/*
 * t_finish_paused_hooks.c - the hooks around a snapshot that finishes with
 * the host paused (BGSNAP_PARAM_FINISH_PAUSED forced to -1), for uffd,
 * uffd-signal and mprotect with two writer threads rewriting every page:
 *  - it commits: pause and resume are called twice each, save_state once,
 *    stats.finished_paused is 1, and the file holds the first pause's
 *    content, not what the finishing pause hook wrote into the region;
 *  - cancelled from inside the finishing pause hook: wait returns
 *    -ECANCELED, resume is still called once per successful pause, no file
 *    is left, every page is writable again and the writers go on;
 *  - the finishing pause hook fails: the snapshot goes on in the
 *    background and commits the first pause's content; resume follows only
 *    the pause that succeeded.
 * tags: concurrency
 * timeout: 600
 */
#include "snaptest.h"

#define MEM (16u << 20)

enum { COMMIT, CANCEL_IN_PAUSE, REFUSE_PAUSE };
static const char *const case_names[] = { "commit", "cancel in the finishing pause", "finishing pause refused" };

struct fin_host {
	struct st_host h;        /* first: the st_* hooks take it as ctx */
	int mode;
	bgsnap_engine *e;
	_Atomic int cancel_rc;
};

static int fin_pause(void *ctx)
{
	struct fin_host *f = ctx;
	int second = atomic_load(&f->h.pause_calls) >= 1;
	if (second && f->mode == REFUSE_PAUSE) {
		atomic_fetch_add(&f->h.pause_calls, 1);
		return -1;
	}
	int r = st_pause(ctx);
	/* A hook may write the regions while the host is parked: after the
	 * instant, so not in the snapshot; with the signal methods the fault
	 * is taken in this (the library's) thread. */
	if (second && r == 0 && f->mode == COMMIT)
		for (size_t off = 0; off < f->h.len; off += 97 * TU_PAGE)
			memset(f->h.base + off, 0x5A, 64);
	if (second && f->mode == CANCEL_IN_PAUSE && r == 0)
		atomic_store(&f->cancel_rc, bgsnap_cancel(f->e));
	return r;
}

static void one(int method, int mode)
{
	char why[256] = "";
	if (bgsnap_method_probe(method, why, sizeof(why)) < 0) {
		printf("  %s: skipped: %s\n", bgsnap_method_name(method), why);
		return;
	}
	printf("  %s, %s\n", bgsnap_method_name(method), case_names[mode]);
	struct st_busy b;
	st_busy_start(&b, method, MEM, 21, 7, 1u << 20, true);
	/* The hooks get the test's host: st_busy's, plus the case. */
	struct fin_host fh;
	memset(&fh, 0, sizeof fh);
	fh.h.base = b.mem;
	fh.h.len = MEM;
	fh.h.w = &b.w;
	fh.h.copy = b.copy;
	fh.mode = mode;
	fh.e = b.e;
	atomic_store(&fh.cancel_rc, 1);
	struct fin_host *f = &fh;
	struct bgsnap_hooks hk = { .pause = fin_pause, .save_state = st_save, .resume = st_resume, .ctx = f };
	CHECK_RC(bgsnap_set_hooks(b.e, &hk), 0, "set_hooks: %s", bgsnap_errmsg(b.e));
	CHECK_RC(bgsnap_set_param(b.e, BGSNAP_PARAM_FINISH_PAUSED, -1), 0, "finish-paused -1: %s", bgsnap_errmsg(b.e));
	int64_t v = 0;
	CHECK_RC(bgsnap_get_param(b.e, BGSNAP_PARAM_FINISH_PAUSED, &v), 0, "get finish-paused");
	CHECK(v == -1, "finish-paused reads back %lld, set -1", (long long)v);

	tu_phase("bgsnap_start");
	int r = bgsnap_start(b.e, b.path);
	CHECK_RC(r, 0, "bgsnap_start: %s", bgsnap_errmsg(b.e));
	tu_phase("bgsnap_wait");
	r = bgsnap_wait(b.e);
	struct bgsnap_stats s;
	bgsnap_get_stats(b.e, &s, sizeof s);
	int pc = atomic_load(&f->h.pause_calls), sc = atomic_load(&f->h.save_calls), rc = atomic_load(&f->h.resume_calls);
	printf("    wait %s; pause %d, save_state %d, resume %d; finished_paused %d, %llu of %llu pages in "
	       "%.1f ms (hook %.1f ms)\n", tu_errname(r), pc, sc, rc, s.finished_paused,
	       (unsigned long long)s.finish_pages, (unsigned long long)s.pages_total, s.finish_pause_us / 1000.0,
	       s.finish_hook_us / 1000.0);
	CHECK(sc == 1, "save_state called %d times, expected once", sc);
	CHECK(pc == 2, "pause called %d times: the finishing pause did not happen", pc);
	switch (mode) {
	case COMMIT:
		CHECK_RC(r, 0, "the snapshot: %s", bgsnap_errmsg(b.e));
		CHECK(rc == 2, "resume called %d times after two pauses", rc);
		CHECK(s.finished_paused == 1 && s.finish_pages > 0 && s.finish_pages <= s.pages_total,
		      "stats: finished_paused %d, finish_pages %llu", s.finished_paused,
		      (unsigned long long)s.finish_pages);
		CHECK(atomic_load(&f->h.copied), "save_state made no copy");
		CHECK_FILE_REGION(b.path, "mem", b.copy, MEM);
		CHECK_WRITERS_PROGRESS(&b.w);
		CHECK_WRITABLE("after finishing paused", b.mem, MEM);
		unlink(b.path);
		break;
	case CANCEL_IN_PAUSE:
		CHECK_RC(atomic_load(&f->cancel_rc), 0, "bgsnap_cancel from the pause hook");
		CHECK_RC(r, -ECANCELED, "a snapshot cancelled in its finishing pause: %s", bgsnap_errmsg(b.e));
		CHECK(rc == 2, "resume called %d times after two successful pauses", rc);
		CHECK_HOST_UNHARMED(&b, -ECANCELED, b.dir, "a snapshot cancelled in its finishing pause");
		break;
	case REFUSE_PAUSE:
		CHECK_RC(r, 0, "the snapshot after a refused finishing pause: %s", bgsnap_errmsg(b.e));
		CHECK(rc == 1, "resume called %d times after one successful pause", rc);
		CHECK(s.finished_paused == 0, "stats say finished paused although the hook refused");
		CHECK_FILE_REGION(b.path, "mem", b.copy, MEM);
		CHECK_WRITERS_PROGRESS(&b.w);
		CHECK_WRITABLE("after a refused finishing pause", b.mem, MEM);
		unlink(b.path);
		break;
	}
	st_busy_stop(&b);
}

int main(void)
{
	const int methods[] = { BGSNAP_METHOD_UFFD, BGSNAP_METHOD_UFFD_SIGNAL, BGSNAP_METHOD_MPROTECT };
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
		for (int mode = COMMIT; mode <= REFUSE_PAUSE; mode++)
			one(methods[m], mode);
	printf("ok\n");
	return 0;
}
