/*
 * t_chain_breaks - what breaks a chain never makes a snapshot miss a
 * page: a snapshot that fails in the middle of a chain (its output pipe
 * closed) makes the next one full, and the chain goes on incremental
 * after it; a region unmapped and mapped again between snapshots makes
 * the next snapshot fail with -EPERM and a message, and the one after it
 * full, with the new content; a region added makes the next one full.
 * A failed snapshot leaves nothing write-protected.  What is still refused: bgsnap_reset on a chain of uffd
 * or uffd-signal (they track with their own write-protect), and fork in a
 * chain over shared memory.  Each image is checked against the
 * pause-instant content.
 *
 * timeout: 120
 * tags: concurrency
 */
#include <signal.h>

#include "chaintest.h"

#define MEM (2u << 20)

struct host {
	const char *dir;
	uint8_t *mem, *copy, *img;
	struct tu_writers w;
	struct st_host h;
	bgsnap_engine *e;
	unsigned n;
};

static void snap_check(struct host *H, int want_incr)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/s%02u.bgs", H->dir, H->n++);
	st_snapshot_ok(H->e, path);
	struct bgsnap_stats s = ct_stats(H->e);
	CHECK(s.incremental == want_incr, "snapshot %s: incremental %d, expected %d", path, s.incremental,
	      want_incr);
	uint8_t *images[1] = { H->img };
	size_t sizes[1] = { MEM };
	uint64_t held[1] = { 0 };
	ct_apply(path, images, sizes, 1, held);
	ct_check_equal(path, H->img, H->copy, MEM);
}

static void host_start(struct host *H, int method)
{
	memset(H, 0, sizeof(*H));
	H->dir = tu_tmpdir();
	H->mem = tu_map_anon(MEM);
	H->copy = tu_map_anon(MEM);
	H->img = tu_map_anon(MEM);
	tu_fill(H->mem, MEM, 3, 4);
	tu_writers_start(&H->w, 2, H->mem, MEM);
	H->h = (struct st_host){ .base = H->mem, .len = MEM, .copy = H->copy, .w = &H->w };
	H->e = ct_engine(method);
	st_add_region(H->e, "mem", H->mem, MEM);
	st_set_hooks(H->e, &H->h);
}

static int failed_in_the_middle(void *arg)
{
	struct host H;
	host_start(&H, *(int *)arg);
	snap_check(&H, 0);
	snap_check(&H, 1);
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	int r = bgsnap_start_fd(H.e, p[1]);
	if (r == 0)
		r = bgsnap_wait(H.e);
	close(p[1]);
	CHECK(r == -EPIPE, "a snapshot into a closed pipe returned %s (%s)", tu_errname(r), bgsnap_errmsg(H.e));
	/* A method that tracks with its own write-protect left nothing
	 * protected behind the failed run. */
	CHECK_WRITABLE("the region after the failed snapshot", H.mem, MEM);
	snap_check(&H, 0);
	snap_check(&H, 1);
	bgsnap_destroy(H.e);
	tu_writers_stop(&H.w);
	return 0;
}

static int remapped_between(void *arg)
{
	struct host H;
	host_start(&H, *(int *)arg);
	snap_check(&H, 0);
	tu_writers_pause(&H.w, 5000);
	CHECK(mmap(H.mem, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == H.mem,
	      "mmap fixed");
	tu_fill(H.mem, MEM, 9, 0);
	tu_writers_resume(&H.w);
	char path[700];
	snprintf(path, sizeof(path), "%s/broken.bgs", H.dir);
	int r = bgsnap_start(H.e, path);
	if (r == 0)
		r = bgsnap_wait(H.e);
	CHECK(r == -EPERM, "the snapshot after a remap returned %s (%s)", tu_errname(r), bgsnap_errmsg(H.e));
	CHECK_ERRMSG(H.e);
	CHECK(access(path, F_OK) != 0, "the failed snapshot left %s", path);
	snap_check(&H, 0);
	snap_check(&H, 1);
	bgsnap_destroy(H.e);
	tu_writers_stop(&H.w);
	CHECK_WRITABLE("region after the chain", H.mem, MEM);
	return 0;
}

/* A chain of uffd or uffd-signal tracks with the method's own
 * write-protect, which bgsnap_reset cannot use: refused, memory left
 * alone, and the chain goes on. */
static int reset_refused(void *arg)
{
	struct host H;
	host_start(&H, *(int *)arg);
	snap_check(&H, 0);
	char last[700];
	snprintf(last, sizeof(last), "%s/s%02u.bgs", H.dir, H.n - 1);
	tu_writers_pause(&H.w, 5000);
	memcpy(H.img, H.mem, MEM);
	int64_t n = bgsnap_reset(H.e, last);
	CHECK(n == -ENOTSUP, "bgsnap_reset on a chain of %s returned %lld", bgsnap_method_name(*(int *)arg),
	      (long long)n);
	CHECK_ERRMSG(H.e);
	ct_check_equal("the memory after a refused reset", H.mem, H.img, MEM);
	tu_writers_resume(&H.w);
	snap_check(&H, 1);
	bgsnap_destroy(H.e);
	tu_writers_stop(&H.w);
	CHECK_WRITABLE("region after the chain", H.mem, MEM);
	return 0;
}

/* A region added between snapshots: the next one is full (for uffd and
 * uffd-signal the kept track ends first: its handler reads the regions),
 * holds both regions, and the chain goes on incremental. */
static int region_added(void *arg)
{
	struct host H;
	host_start(&H, *(int *)arg);
	snap_check(&H, 0);
	snap_check(&H, 1);
	uint8_t *extra = tu_map_anon(MEM);
	memset(extra, 0x3c, MEM);
	st_add_region(H.e, "extra", extra, MEM);
	for (int k = 0; k < 2; k++) {
		char path[700];
		snprintf(path, sizeof(path), "%s/added%d.bgs", H.dir, k);
		st_snapshot_ok(H.e, path);
		struct bgsnap_stats s = ct_stats(H.e);
		CHECK(s.incremental == k, "snapshot %d after a region was added: incremental %d", k, s.incremental);
		if (k == 0) {
			uint8_t *images[2] = { H.img, tu_map_anon(MEM) };
			size_t sizes[2] = { MEM, MEM };
			uint64_t held[2] = { 0, 0 };
			ct_apply(path, images, sizes, 2, held);
			ct_check_equal("region mem after a region was added", H.img, H.copy, MEM);
			ct_check_equal("the added region", images[1], extra, MEM);
		}
		extra[5 * TU_PAGE] ^= 1;
	}
	bgsnap_destroy(H.e);
	tu_writers_stop(&H.w);
	CHECK_WRITABLE("region after the chain", H.mem, MEM);
	CHECK_WRITABLE("the added region after the chain", extra, MEM);
	return 0;
}

/* fork in a chain still refuses shared memory: its child would see the
 * host's writes made after the pause. */
static int shared_refused(void *arg)
{
	int method = *(int *)arg;
	uint8_t *mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED, "mmap shared");
	memset(mem, 0x5a, MEM);
	bgsnap_engine *e = ct_engine(method);
	st_add_region(e, "shared", mem, MEM);
	char path[700];
	snprintf(path, sizeof(path), "%s/x.bgs", tu_tmpdir());
	int r = bgsnap_start(e, path);
	CHECK(r == -ENOTSUP, "method %s with a chain over shared memory: %s", bgsnap_method_name(method),
	      tu_errname(r));
	CHECK(strstr(bgsnap_errmsg(e), "shared") != NULL, "the refusal does not say why: %s", bgsnap_errmsg(e));
	CHECK(access(path, F_OK) != 0, "the refused snapshot left %s", path);
	bgsnap_destroy(e);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	unsigned chaining = ST_MASK(BGSNAP_METHOD_MPROTECT) | ST_MASK(BGSNAP_METHOD_STOP) | ST_MASK(BGSNAP_METHOD_FORK) |
	                    ST_MASK(BGSNAP_METHOD_UFFD) | ST_MASK(BGSNAP_METHOD_UFFD_SIGNAL);
	st_for_each_method(&t, "failed-in-the-middle", failed_in_the_middle, chaining, 40);
	st_for_each_method(&t, "remapped-between", remapped_between, chaining, 40);
	st_for_each_method(&t, "region-added", region_added, chaining, 40);
	st_for_each_method(&t, "reset-refused", reset_refused,
	                   ST_MASK(BGSNAP_METHOD_UFFD) | ST_MASK(BGSNAP_METHOD_UFFD_SIGNAL), 40);
	st_for_each_method(&t, "shared-refused", shared_refused, ST_MASK(BGSNAP_METHOD_FORK), 20);
	tu_tally_exit(&t, "chain breaks");
}
