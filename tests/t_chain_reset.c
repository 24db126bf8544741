/*
 * t_chain_reset - bgsnap_reset returns the regions to the last snapshot:
 * after pages are written and discarded, the memory equals the snapshot
 * again, and the count it returns is the pages changed; twenty times
 * over, with pages seen before and new ones.  A snapshot taken after a
 * reset is incremental over the same parent and its chain's image is
 * right.  Resetting to a snapshot that is not the last one is -ESTALE;
 * without a chain, -ESTALE too.
 *
 * timeout: 120
 */
#include "chaintest.h"

#define MEM (2u << 20)
#define PAGES (MEM / TU_PAGE)

struct counter {
	_Atomic int pauses, resumes;
};
static int c_pause(void *ctx) { atomic_fetch_add(&((struct counter *)ctx)->pauses, 1); return 0; }
static void c_resume(void *ctx) { atomic_fetch_add(&((struct counter *)ctx)->resumes, 1); }

static int reset_case(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	uint8_t *mem = tu_map_anon(MEM), *want = tu_map_anon(MEM), *img = tu_map_anon(MEM);
	tu_fill(mem, MEM, 11, 3);
	bgsnap_engine *e = ct_engine(method);
	st_add_region(e, "mem", mem, MEM);
	struct counter cnt = { 0 };
	struct bgsnap_hooks hk = { .pause = c_pause, .resume = c_resume, .ctx = &cnt };
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "hooks");
	char s0[700], s1[700], s2[700];
	snprintf(s0, sizeof(s0), "%s/s0.bgs", dir);
	snprintf(s1, sizeof(s1), "%s/s1.bgs", dir);
	snprintf(s2, sizeof(s2), "%s/s2.bgs", dir);
	st_snapshot_ok(e, s0);
	for (size_t p = 0; p < 10; p++)
		mem[p * 97 % PAGES * TU_PAGE] ^= 1;
	st_snapshot_ok(e, s1);
	memcpy(want, mem, MEM);
	uint8_t seen[PAGES];
	for (unsigned round = 0; round < 20; round++) {
		memset(seen, 0, sizeof(seen));
		int64_t changed = 0;
		for (unsigned i = 0; i < 5 + round; i++) {
			size_t p = (round * 131 + i * 29) % PAGES;
			mem[p * TU_PAGE + i] ^= 0xff;
			changed += !seen[p];
			seen[p] = 1;
		}
		size_t d = (round * 17) % (PAGES - 3);
		CHECK(madvise(mem + d * TU_PAGE, 3 * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
		for (size_t p = d; p < d + 3; p++) {
			changed += !seen[p];
			seen[p] = 1;
		}
		int pauses = atomic_load(&cnt.pauses);
		int64_t n = bgsnap_reset(e, s1);
		if (n == -EBADMSG && strstr(bgsnap_errmsg(e), "unsupported format version 3"))
			SKIP("this library's reader cannot read format version 3 (chains): %s", bgsnap_errmsg(e));
		CHECK(n == changed, "round %u: bgsnap_reset returned %lld (%s), %lld pages were changed", round,
		      (long long)n, bgsnap_errmsg(e), (long long)changed);
		CHECK(atomic_load(&cnt.pauses) == pauses + 1 && atomic_load(&cnt.resumes) == pauses + 1,
		      "round %u: the reset did not pause and resume the host once", round);
		ct_check_equal("memory after a reset", mem, want, MEM);
	}
	/* Nothing written: nothing to copy. */
	CHECK(bgsnap_reset(e, s1) == 0, "a reset with nothing written copied pages");
	CHECK(bgsnap_reset(e, s0) == -ESTALE, "a reset to an older snapshot was not refused");
	/* A snapshot after resets: incremental over s1, holding only what
	 * was written after the last reset. */
	mem[5 * TU_PAGE] ^= 1;
	memcpy(want, mem, MEM);
	st_snapshot_ok(e, s2);
	struct bgsnap_stats s = ct_stats(e);
	CHECK(s.incremental == 1 && s.dirty_pages == 1, "after resets: incremental %d, %llu pages",
	      s.incremental, (unsigned long long)s.dirty_pages);
	uint8_t *images[1] = { img };
	size_t sizes[1] = { MEM };
	uint64_t held[1] = { 0 };
	ct_apply(s0, images, sizes, 1, held);
	ct_apply(s1, images, sizes, 1, held);
	ct_apply(s2, images, sizes, 1, held);
	ct_check_equal("the chain's image after resets", img, want, MEM);
	bgsnap_destroy(e);

	bgsnap_engine *plain = st_engine(method, 0);
	st_add_region(plain, "mem", mem, MEM);
	CHECK(bgsnap_reset(plain, s2) == -ESTALE, "a reset without a chain was not refused");
	bgsnap_destroy(plain);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "reset", reset_case, ST_MASK(BGSNAP_METHOD_MPROTECT) | ST_MASK(BGSNAP_METHOD_STOP), 60);
	tu_tally_exit(&t, "reset");
}
