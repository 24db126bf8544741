/*
 * t_chain_incremental - chains of 1, 2 and 10 incremental snapshots, for
 * every method that can chain (mprotect, stop, fork with the asynchronous
 * tracker; uffd, uffd-signal with their own write-protect), with 1 and 4 writer
 * threads: the image of the chain (its files applied oldest to newest)
 * equals the pause-instant content after every snapshot.  A second region
 * the writers never touch is changed by hand between snapshots, partly
 * discarded with MADV_DONTNEED: each incremental file holds exactly the
 * pages changed or discarded since its parent, no more, none missed.
 *
 * timeout: 300
 * tags: concurrency
 */
#include "chaintest.h"

#define MEM (2u << 20)
#define QUIET (1u << 20)
#define QPAGES (QUIET / TU_PAGE)

struct cfg {
	int method;
	unsigned threads;
	unsigned incrementals;
};

static int chain_case(void *arg)
{
	const struct cfg *c = arg;
	const char *dir = tu_tmpdir();
	uint8_t *mem = tu_map_anon(MEM), *copy = tu_map_anon(MEM), *quiet = tu_map_anon(QUIET);
	uint8_t *qexp = tu_map_anon(QUIET), *img_mem = tu_map_anon(MEM), *img_q = tu_map_anon(QUIET);
	tu_fill(mem, MEM, 7, 5);
	tu_fill(quiet, QUIET, 8, 3);
	memcpy(qexp, quiet, QUIET);
	struct tu_writers w;
	tu_writers_start(&w, c->threads, mem, MEM);
	struct st_host h = { .base = mem, .len = MEM, .copy = copy, .w = &w };
	bgsnap_engine *e = ct_engine(c->method);
	st_add_region(e, "mem", mem, MEM);
	st_add_region(e, "quiet", quiet, QUIET);
	st_set_hooks(e, &h);
	uint8_t *images[2] = { img_mem, img_q };
	size_t sizes[2] = { MEM, QUIET };
	for (unsigned k = 0; k <= c->incrementals; k++) {
		uint64_t changed = 0;
		if (k > 0) {
			/* A few pages written, some of them twice, and a discard. */
			for (unsigned i = 0; i < 3 + k; i++) {
				size_t p = (k * 37 + i * 11) % QPAGES;
				quiet[p * TU_PAGE + i] ^= 0x5a;
				qexp[p * TU_PAGE + i] ^= 0x5a;
			}
			size_t d = (k * 53) % (QPAGES - 4);
			CHECK(madvise(quiet + d * TU_PAGE, 4 * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
			memset(qexp + d * TU_PAGE, 0, 4 * TU_PAGE);
			for (size_t p = 0; p < QPAGES; p++) {
				int hit = p >= d && p < d + 4;
				for (unsigned i = 0; i < 3 + k && !hit; i++)
					hit = p == (k * 37 + i * 11) % QPAGES;
				changed += hit;
			}
		}
		char path[700];
		snprintf(path, sizeof(path), "%s/s%02u.bgs", dir, k);
		st_snapshot_ok(e, path);
		struct bgsnap_stats s = ct_stats(e);
		int sync = c->method == BGSNAP_METHOD_UFFD || c->method == BGSNAP_METHOD_UFFD_SIGNAL;
		CHECK(s.tracking == (sync ? BGSNAP_TRACKING_UFFD_SYNC : BGSNAP_TRACKING_UFFD_ASYNC), "tracking %d",
		      s.tracking);
		CHECK(s.incremental == (k > 0) && s.depth == k, "snapshot %u: incremental %d depth %u", k,
		      s.incremental, s.depth);
		uint64_t held[2] = { 0, 0 };
		ct_apply(path, images, sizes, 2, held);
		ct_check_equal("region mem", img_mem, copy, MEM);
		ct_check_equal("region quiet", img_q, qexp, QUIET);
		if (k > 0) {
			CHECK(held[1] == changed, "snapshot %u holds %llu pages of the untouched region, "
			      "%llu were changed or discarded", k, (unsigned long long)held[1],
			      (unsigned long long)changed);
			CHECK(s.pages_saved == s.dirty_pages && held[0] + held[1] == s.dirty_pages,
			      "snapshot %u: %llu pages saved, %llu in the file, %llu written since the parent", k,
			      (unsigned long long)s.pages_saved, (unsigned long long)(held[0] + held[1]),
			      (unsigned long long)s.dirty_pages);
		}
	}
	CHECK_WRITERS_PROGRESS(&w);
	bgsnap_destroy(e);
	tu_writers_stop(&w);
	CHECK_WRITABLE("region mem after the chain", mem, MEM);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	static const int methods[] = { BGSNAP_METHOD_MPROTECT, BGSNAP_METHOD_STOP, BGSNAP_METHOD_FORK,
	                               BGSNAP_METHOD_UFFD, BGSNAP_METHOD_UFFD_SIGNAL };
	static const unsigned threads[] = { 1, 4 }, lens[] = { 1, 2, 10 };
	for (unsigned mi = 0; mi < sizeof(methods) / sizeof(methods[0]); mi++)
		for (unsigned ti = 0; ti < 2; ti++)
			for (unsigned li = 0; li < 3; li++) {
				struct cfg c = { methods[mi], threads[ti], lens[li] };
				char name[128];
				snprintf(name, sizeof(name), "chain/%s/threads=%u/incrementals=%u",
				         bgsnap_method_name(c.method), c.threads, c.incrementals);
				if (!st_method_selected(c.method))
					continue;
				tu_tally_add(&t, tu_run_case(name, chain_case, &c, 60));
			}
	tu_tally_exit(&t, "chains");
}
