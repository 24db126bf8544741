/*
 * snaptest.h - helpers for tests that drive the engine and read snapshots
 * back.  Header-only (static functions) so that testutil.o, linked into every
 * test, never depends on the engine or the reader.
 *
 * A "host" here is a region of memory, optional writer threads that the
 * pause hook parks, and a save_state hook that copies the region: the copy
 * is exactly the pause-instant content the snapshot must hold.
 */
#ifndef BGSNAP_SNAPTEST_H
#define BGSNAP_SNAPTEST_H

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgsnap.h"
#include "testutil.h"

/* BGSNAP_TEST_METHODS=uffd,fork limits a run to those methods. */
static inline int st_method_selected(int m)
{
	const char *only = getenv("BGSNAP_TEST_METHODS");
	if (!only || !*only)
		return 1;
	char list[256], key[64];
	snprintf(list, sizeof(list), ",%s,", only);
	snprintf(key, sizeof(key), ",%s,", bgsnap_method_name(m));
	return strstr(list, key) != NULL;
}

/* Runs fn(&method) as a forked case for every concrete method that `mask`
 * selects (bit 1<<m; ~0u for all) and bgsnap_method_probe() accepts.  A
 * refused method is a skip with the probe's reason. */
static inline void st_for_each_method(struct tu_tally *t, const char *test, int (*fn)(void *), unsigned mask,
                               unsigned timeout_s)
{
	for (int m = BGSNAP_METHOD_AUTO + 1; m < BGSNAP_METHOD_COUNT_; m++) {
		if (!(mask & (1u << m)))
			continue;
		if (!st_method_selected(m))
			continue;
		char name[128], why[256] = "";
		snprintf(name, sizeof(name), "%s/%s", test, bgsnap_method_name(m));
		int r = bgsnap_method_probe(m, why, sizeof(why));
		if (r < 0) {
			char reason[400];
			snprintf(reason, sizeof(reason), "method %s refused by bgsnap_method_probe: %s (%s)",
			         bgsnap_method_name(m), why, tu_errname(r));
			printf("skip %s: %s\n", name, reason);
			tu_tally_skip(t, reason);
			continue;
		}
		int method = m;
		tu_tally_add(t, tu_run_case(name, fn, &method, timeout_s));
	}
}

#define ST_MASK(m) (1u << (m))
/* Methods that track first writes while the host runs (not fork, not stop). */
#define ST_MASK_TRACKING (ST_MASK(BGSNAP_METHOD_UFFD) | ST_MASK(BGSNAP_METHOD_UFFD_SIGNAL) | \
                          ST_MASK(BGSNAP_METHOD_MPROTECT))

static inline bgsnap_engine *st_engine(int method, size_t copybuf_bytes)
{
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = method;
	if (copybuf_bytes)
		o.copy_buffer_bytes = copybuf_bytes;
	bgsnap_engine *e = NULL;
	int r = bgsnap_create(&e, &o);
	if (r < 0 || !e)
		FAIL("bgsnap_create(method %s): %s", bgsnap_method_name(method), tu_errname(r));
	return e;
}

struct st_host {
	uint8_t *base;             /* the region                              */
	size_t len;
	uint8_t *copy;             /* pause-instant copy (save_state), or NULL */
	struct tu_writers *w;      /* writers to park in pause, or NULL        */
	int fail_pause, fail_save; /* make that hook return -1                 */
	_Atomic int pause_calls, save_calls, resume_calls;
	_Atomic uint64_t paused_at_ns;
	_Atomic int copied;        /* set (release) once `copy` is filled      */
	void (*in_save)(struct st_host *h, bgsnap_state *st); /* extra work     */
	void *user;
};

static inline int st_pause(void *ctx)
{
	struct st_host *h = ctx;
	atomic_fetch_add(&h->pause_calls, 1);
	if (h->fail_pause)
		return -1;
	if (h->w && tu_writers_pause(h->w, 5000) != 0) {
		tu_writers_resume(h->w);
		/* Not a test failure by itself: the engine sees a failed pause. */
		fprintf(stderr, "pause hook: a writer thread did not park within 5 s "
		        "(blocked in a write fault on a still-protected page?)\n");
		return -1;
	}
	atomic_store(&h->paused_at_ns, tu_now_ns());
	return 0;
}

static inline int st_save(bgsnap_state *st, void *ctx)
{
	struct st_host *h = ctx;
	atomic_fetch_add(&h->save_calls, 1);
	if (h->fail_save)
		return -1;
	if (h->copy) {
		memcpy(h->copy, h->base, h->len);
		atomic_store(&h->copied, 1);
	}
	if (h->in_save)
		h->in_save(h, st);
	return 0;
}

static inline void st_resume(void *ctx)
{
	struct st_host *h = ctx;
	atomic_fetch_add(&h->resume_calls, 1);
	if (h->w)
		tu_writers_resume(h->w);
}

static inline void st_set_hooks(bgsnap_engine *e, struct st_host *h)
{
	struct bgsnap_hooks hk = { .pause = st_pause, .save_state = st_save, .resume = st_resume, .ctx = h };
	int r = bgsnap_set_hooks(e, &hk);
	if (r < 0)
		FAIL("bgsnap_set_hooks: %s: %s", tu_errname(r), bgsnap_errmsg(e));
}

static inline void st_add_region(bgsnap_engine *e, const char *name, void *addr, size_t len)
{
	int r = bgsnap_add_region(e, name, addr, len);
	if (r < 0)
		FAIL("bgsnap_add_region(%s, %zu bytes): %s: %s", name, len, tu_errname(r), bgsnap_errmsg(e));
}

/*
 * A host under load: `len` bytes of tu_fill(seed, zero_every) content that
 * two writer threads keep rewriting (the pause hook parks them), an engine
 * of `method` with a `copybuf`-byte copy buffer, the region "mem" and the
 * st_* hooks; with want_copy, h.copy receives the pause-instant content.
 * The struct must not move while the host runs (h points into it).
 */
struct st_busy {
	const char *dir;             /* the test's directory (tu_tmpdir)     */
	char path[600];              /* dir/s.bgs, a snapshot path            */
	uint8_t *mem, *copy;
	size_t len;
	struct tu_writers w;
	struct st_host h;
	bgsnap_engine *e;
};

static inline void st_busy_start(struct st_busy *b, int method, size_t len, uint64_t seed, unsigned zero_every,
                                 size_t copybuf, bool want_copy)
{
	memset(b, 0, sizeof *b);
	b->dir = tu_tmpdir();
	snprintf(b->path, sizeof(b->path), "%s/s.bgs", b->dir);
	b->len = len;
	b->mem = tu_map_anon(len);
	tu_fill(b->mem, len, seed, zero_every);
	if (want_copy)
		b->copy = tu_map_anon(len);
	tu_writers_start(&b->w, 2, b->mem, len);
	b->h.base = b->mem;
	b->h.len = len;
	b->h.w = &b->w;
	b->h.copy = b->copy;
	b->e = st_engine(method, copybuf);
	st_add_region(b->e, "mem", b->mem, len);
	st_set_hooks(b->e, &b->h);
}

static inline void st_busy_stop(struct st_busy *b)
{
	bgsnap_destroy(b->e);
	tu_writers_stop(&b->w);
	munmap(b->mem, b->len);
	if (b->copy)
		munmap(b->copy, b->len);
}

/* Fails unless `dir` holds exactly `want` entries (listing them). */
#define CHECK_DIR_COUNT(dir, want, ...)                                                    \
	do {                                                                               \
		char st_names_[1024];                                                      \
		int st_n_ = tu_dir_entries(dir, st_names_, sizeof(st_names_));             \
		if (st_n_ != (want)) {                                                     \
			tu_msg(__FILE__, __LINE__, "directory %s holds %d entries (%s), expected %d", \
			       dir, st_n_, st_names_, (int)(want));                       \
			FAIL(__VA_ARGS__);                                                 \
		}                                                                          \
	} while (0)

/* Fails unless the engine's final stats say FAILED with `code`. */
static inline void st_check_failed_stats(const char *file, int line, bgsnap_engine *e, int code)
{
	struct bgsnap_stats s;
	int r = bgsnap_get_stats(e, &s, sizeof s);
	if (r < 0) {
		tu_msg(file, line, "bgsnap_get_stats: %s", tu_errname(r));
		tu_fail_exit();
	}
	if (s.state != BGSNAP_STATE_FAILED || s.error != code) {
		tu_msg(file, line, "after a failed snapshot: stats.state=%d stats.error=%s, expected FAILED(%d) and %s",
		       s.state, tu_errname(s.error), BGSNAP_STATE_FAILED, tu_errname(code));
		tu_fail_exit();
	}
}
#define CHECK_FAILED_STATS(e, code) st_check_failed_stats(__FILE__, __LINE__, e, code)

/* Fails unless the error message is non-empty; prints it (for the log). */
#define CHECK_ERRMSG(e)                                                                    \
	do {                                                                               \
		const char *st_m_ = bgsnap_errmsg(e);                                      \
		CHECK(st_m_ && st_m_[0], "the engine gave no error message");              \
		printf("    message: %s\n", st_m_);                                            \
	} while (0)

/* Takes a complete snapshot to `path` and fails the test unless it commits. */
static inline void st_snapshot_ok(bgsnap_engine *e, const char *path)
{
	tu_phase("bgsnap_start of a snapshot that should succeed");
	int r = bgsnap_start(e, path);
	if (r < 0)
		FAIL("bgsnap_start(%s): %s: %s", path, tu_errname(r), bgsnap_errmsg(e));
	tu_phase("bgsnap_wait of a snapshot that should succeed");
	r = bgsnap_wait(e);
	if (r < 0)
		FAIL("bgsnap_wait: %s: %s", tu_errname(r), bgsnap_errmsg(e));
	tu_phase("after a successful snapshot");
	struct stat sb;
	if (stat(path, &sb) != 0)
		FAIL("bgsnap_wait returned 0 but %s does not exist: %s", path, strerror(errno));
}

/*
 * Reads region `name` of the snapshot at `path` through the random-access
 * reader, runs the full verify, and fails the test unless it equals
 * `want` (len bytes), naming the first differing page.
 */
static inline void st_check_file_region(const char *file, int line, const char *path, const char *name,
                                 const void *want, size_t len)
{
	char err[512] = "";
	bgsnap_reader *rd = NULL;
	tu_phase("reading the snapshot back");
	int r = bgsnap_reader_open(&rd, path, err, sizeof(err));
	if (r < 0) {
		tu_msg(file, line, "bgsnap_reader_open(%s): %s: %s", path, tu_errname(r), err);
		tu_fail_exit();
	}
	r = bgsnap_reader_verify(rd);
	if (r < 0) {
		tu_msg(file, line, "bgsnap_reader_verify(%s): %s: %s", path, tu_errname(r), bgsnap_reader_errmsg(rd));
		tu_fail_exit();
	}
	int idx = bgsnap_reader_find_region(rd, name);
	if (idx < 0) {
		tu_msg(file, line, "%s has no region '%s'", path, name);
		tu_fail_exit();
	}
	uint8_t *got = malloc(len);
	if (!got)
		FAIL("out of memory");
	r = bgsnap_reader_read_region(rd, (unsigned)idx, got, len, 0);
	if (r < 0) {
		tu_msg(file, line, "bgsnap_reader_read_region(%s): %s: %s", name, tu_errname(r), bgsnap_reader_errmsg(rd));
		tu_fail_exit();
	}
	for (size_t pg = 0; pg < len / TU_PAGE; pg++) {
		if (memcmp(got + pg * TU_PAGE, (const uint8_t *)want + pg * TU_PAGE, TU_PAGE) != 0) {
			size_t zero = 1;
			for (size_t i = 0; i < TU_PAGE && zero; i++)
				zero = got[pg * TU_PAGE + i] == 0;
			tu_msg(file, line, "%s region '%s': page %zu of %zu differs from the pause-instant content%s",
			       path, name, pg, len / TU_PAGE, zero ? " (the snapshot holds zeros there)" : "");
			tu_fail_exit();
		}
	}
	free(got);
	bgsnap_reader_close(rd);
}
#define CHECK_FILE_REGION(path, name, want, len) st_check_file_region(__FILE__, __LINE__, path, name, want, len)

/*
 * After a snapshot of the busy host `b` failed with `code`: the engine says
 * why (message, FAILED stats with that code), `dir` holds no file, the
 * writers still make progress, every page is writable, no child is left.
 */
#define CHECK_HOST_UNHARMED(b, code, dir, what)                                            \
	do {                                                                               \
		CHECK_ERRMSG((b)->e);                                                      \
		CHECK_FAILED_STATS((b)->e, code);                                          \
		CHECK_DIR_COUNT(dir, 0, "%s left files behind", what);                     \
		CHECK_WRITERS_PROGRESS(&(b)->w);                                           \
		CHECK_WRITABLE(what, (b)->mem, (b)->len);                                  \
		CHECK(tu_no_children(), "%s left a child process", what);                  \
	} while (0)

/*
 * A lazy restore in progress: `len` bytes of tu_fill(seed, 3) content
 * (src) saved by the stop method to `name` in the test's directory, and
 * a lazy restore of it started into fresh memory (dst).
 */
struct st_lazy {
	uint8_t *src, *dst;
	size_t len;
	bgsnap_reader *rd;
	bgsnap_lazy *l;
	char err[512];
};

/* Returns 0 with the restore started, or the start's -ENOSYS, -EPERM or
 * -ENOTSUP when lazy restore cannot run here (the reason in z->err, the
 * reader closed); fails the test on any other error. */
static inline int st_lazy_start(struct st_lazy *z, const char *name, size_t len, uint64_t seed)
{
	memset(z, 0, sizeof *z);
	z->len = len;
	z->src = tu_map_anon(len);
	tu_fill(z->src, len, seed, 3);
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_STOP, 0);
	st_add_region(e, "mem", z->src, len);
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", tu_tmpdir(), name);
	st_snapshot_ok(e, path);
	bgsnap_destroy(e);
	CHECK_RC(bgsnap_reader_open(&z->rd, path, z->err, sizeof(z->err)), 0, "reader_open: %s", z->err);
	z->dst = tu_map_anon(len);
	struct bgsnap_restore_target t = { .region = 0, .dst = z->dst, .len = len };
	int r = bgsnap_lazy_restore_start(&z->l, z->rd, &t, 1, z->err, sizeof(z->err));
	if (r == -ENOSYS || r == -EPERM || r == -ENOTSUP) {
		bgsnap_reader_close(z->rd);
		z->rd = NULL;
		return r;
	}
	CHECK_RC(r, 0, "lazy_restore_start: %s", z->err);
	return 0;
}

/* Waits for the restore to finish and fails unless dst equals src. */
static inline void st_lazy_finish(struct st_lazy *z)
{
	CHECK_RC(bgsnap_lazy_wait(z->l), 0, "lazy_wait: %s", bgsnap_lazy_errmsg(z->l));
	CHECK(memcmp(z->dst, z->src, z->len) == 0, "the lazily restored memory differs from the snapshot's");
}

static inline void st_lazy_free(struct st_lazy *z)
{
	bgsnap_lazy_free(z->l);
	if (z->rd)
		bgsnap_reader_close(z->rd);
	munmap(z->dst, z->len);
	munmap(z->src, z->len);
}

#endif
