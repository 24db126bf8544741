/*
 * t_err_hooks.c - the host hooks, for every method:
 *  - a failing pause hook: start returns -ECANCELED, nothing is protected,
 *    no file, save_state is not called, the engine is reusable;
 *  - a failing save_state hook: start returns -ECANCELED, resume is still
 *    called exactly once, nothing is protected, no file;
 *  - a good snapshot calls pause, save_state, resume once each, in order;
 *    bgsnap_state_add refuses bad and duplicate names, accepts empty blobs,
 *    and the blobs read back intact;
 *  - calling bgsnap_add_region or bgsnap_set_hooks from inside save_state
 *    (a snapshot is running) returns -EBUSY.
 * timeout: 600
 */
#include "snaptest.h"

#define MEM (4u << 20)

struct order {
	int seq[8];
	_Atomic int n;
};
static struct order ord;

static void in_save_states(struct st_host *h, bgsnap_state *st)
{
	bgsnap_engine *e = h->user;
	char n64[70];
	memset(n64, 's', 64);
	n64[64] = '\0';
	static const char cpu[] = "registers: rax=1 rbx=2";
	int r;
	if ((r = bgsnap_state_add(st, "", "x", 1)) != -EINVAL)
		FAIL("state_add with an empty name returned %s", tu_errname(r));
	if ((r = bgsnap_state_add(st, NULL, "x", 1)) != -EINVAL)
		FAIL("state_add with a NULL name returned %s", tu_errname(r));
	if ((r = bgsnap_state_add(st, n64, "x", 1)) != -EINVAL)
		FAIL("state_add with a 64-byte name returned %s", tu_errname(r));
	if ((r = bgsnap_state_add(st, "cpu", cpu, sizeof(cpu))) != 0)
		FAIL("state_add(cpu) returned %s", tu_errname(r));
	if ((r = bgsnap_state_add(st, "cpu", cpu, sizeof(cpu))) != -EINVAL)
		FAIL("a duplicate state name returned %s", tu_errname(r));
	if ((r = bgsnap_state_add(st, "empty", NULL, 0)) != 0)
		FAIL("an empty state blob returned %s", tu_errname(r));
	(void)e;
}

/* The engine is running during the pause: its regions cannot change (the
 * header with the region table may already be written). */
static void in_save_add_region(struct st_host *h, bgsnap_state *st)
{
	(void)st;
	int r = bgsnap_add_region(h->user, "late", h->base + MEM, TU_PAGE);
	if (r != -EBUSY)
		FAIL("bgsnap_add_region called from the save_state hook returned %s, expected -EBUSY",
		     tu_errname(r));
	struct bgsnap_hooks hk = { 0 };
	r = bgsnap_set_hooks(h->user, &hk);
	if (r != -EBUSY)
		FAIL("bgsnap_set_hooks called from the save_state hook returned %s, expected -EBUSY",
		     tu_errname(r));
}

static int ord_pause(void *ctx)
{
	ord.seq[atomic_fetch_add(&ord.n, 1) & 7] = 1;
	return st_pause(ctx);
}
static int ord_save(bgsnap_state *st, void *ctx)
{
	ord.seq[atomic_fetch_add(&ord.n, 1) & 7] = 2;
	return st_save(st, ctx);
}
static void ord_resume(void *ctx)
{
	ord.seq[atomic_fetch_add(&ord.n, 1) & 7] = 3;
	st_resume(ctx);
}

static int run(int method, int fail_pause, int fail_save, int busy)
{
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	/* One page more than the region, for the "late" region attempt. */
	uint8_t *m = tu_map_anon(MEM + TU_PAGE);
	tu_fill(m, MEM, 9, 4);
	struct tu_writers w;
	tu_writers_start(&w, 2, m, MEM);
	struct st_host h = { .base = m, .len = MEM, .w = &w, .fail_pause = fail_pause, .fail_save = fail_save };
	bgsnap_engine *e = st_engine(method, 0);
	st_add_region(e, "mem", m, MEM);
	struct bgsnap_hooks hk = { .pause = ord_pause, .save_state = ord_save, .resume = ord_resume, .ctx = &h };
	/* The start's hooks once each; the finishing pause's are
	 * t_finish_paused_hooks'. */
	CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FINISH_PAUSED, 0), 0, "finish-paused off");
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "set_hooks");

	if (fail_pause || fail_save) {
		tu_phase("bgsnap_start with a failing hook");
		CHECK_RC(bgsnap_start(e, path), -ECANCELED, "start with a failing %s hook", fail_pause ? "pause" : "save_state");
		CHECK_ERRMSG(e);
		CHECK_DIR_COUNT(dir, 0, "a snapshot aborted by a hook left files");
		CHECK_RC(atomic_load(&h.pause_calls), 1, "pause calls");
		if (fail_pause)
			CHECK_RC(atomic_load(&h.save_calls), 0, "save_state called after pause failed");
		else
			CHECK_RC(atomic_load(&h.resume_calls), 1, "resume calls after save_state failed");
		/* A host whose pause failed may have half-paused: make sure
		 * its writers run (the hook itself never parked them). */
		tu_writers_resume(&w);
		CHECK_WRITABLE("region after a hook failed", m, MEM);
		CHECK_WRITERS_PROGRESS(&w);
		CHECK(tu_no_children(), "a child process was left");
		h.fail_pause = h.fail_save = 0;
	}
	/* A good snapshot (also: the engine survived the failure above). */
	uint8_t *copy = tu_map_anon(MEM);
	h.copy = copy;
	h.in_save = busy ? in_save_add_region : in_save_states;
	h.user = e;
	atomic_store(&h.pause_calls, 0);
	atomic_store(&h.save_calls, 0);
	atomic_store(&h.resume_calls, 0);
	atomic_store(&ord.n, 0);
	st_snapshot_ok(e, path);
	CHECK(atomic_load(&ord.n) == 3 && ord.seq[0] == 1 && ord.seq[1] == 2 && ord.seq[2] == 3,
	      "hooks ran %d times in order %d,%d,%d; expected pause, save_state, resume once each",
	      atomic_load(&ord.n), ord.seq[0], ord.seq[1], ord.seq[2]);
	CHECK_FILE_REGION(path, "mem", copy, MEM);
	if (busy) {
		bgsnap_destroy(e);
		tu_writers_stop(&w);
		return 0;
	}

	char err[512];
	bgsnap_reader *rd;
	CHECK_RC(bgsnap_reader_open(&rd, path, err, sizeof(err)), 0, "reader_open: %s", err);
	const void *data;
	size_t len;
	CHECK_RC(bgsnap_reader_find_state(rd, "cpu", &data, &len), 0, "state 'cpu' missing");
	CHECK(len == sizeof("registers: rax=1 rbx=2") && memcmp(data, "registers: rax=1 rbx=2", len) == 0,
	      "state 'cpu' differs (%zu bytes)", len);
	CHECK_RC(bgsnap_reader_find_state(rd, "empty", &data, &len), 0, "state 'empty' missing");
	CHECK(len == 0, "state 'empty' has %zu bytes", len);
	CHECK_RC(bgsnap_reader_find_state(rd, "nope", &data, &len), -ENOENT, "absent state");
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(rd, &fi, sizeof fi), 0, "reader_info");
	CHECK(fi.state_count == 2, "the file has %u state blobs, expected 2", fi.state_count);
	bgsnap_reader_close(rd);
	bgsnap_destroy(e);
	tu_writers_stop(&w);
	return 0;
}

static int case_pause_fails(void *arg) { return run(*(int *)arg, 1, 0, 0); }
static int case_save_fails(void *arg) { return run(*(int *)arg, 0, 1, 0); }
static int case_good(void *arg) { return run(*(int *)arg, 0, 0, 0); }
static int case_busy(void *arg) { return run(*(int *)arg, 0, 0, 1); }

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "pause-fails", case_pause_fails, ~0u, 20);
	st_for_each_method(&t, "save_state-fails", case_save_fails, ~0u, 20);
	st_for_each_method(&t, "hooks-and-state", case_good, ~0u, 20);
	st_for_each_method(&t, "add-region-in-save_state", case_busy, ~0u, 20);
	tu_tally_exit(&t, "t_err_hooks");
}
