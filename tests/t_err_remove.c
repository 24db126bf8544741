/*
 * t_err_remove.c - the host breaks the contract during a snapshot: right
 * after bgsnap_start returns it drops (MADV_DONTNEED), unmaps (munmap) or
 * moves (mremap) the second half of the region, whose pages the writer has
 * most likely not saved yet.  The old content is then lost to the engine, so
 * the snapshot must fail with a clear message; what it must never do is
 * commit a file holding zeros (or anything but the pause-instant content)
 * for those pages, or crash the host.  A snapshot that commits the right
 * content (the engine saved those pages first, or forked before) passes.
 * After the failure the remaining memory is writable and the host runs.
 * Every method runs; for stop the snapshot is complete when start returns.
 * timeout: 600
 */
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (64u << 20)

enum { DONTNEED, MUNMAP, MREMAP };
static const char *const what_name[] = { "madvise(MADV_DONTNEED)", "munmap", "mremap" };

/* A snapshot may commit only with the exact pause-instant content `want`;
 * otherwise it fails cleanly: a message, FAILED stats, no file. */
static void check_outcome(bgsnap_engine *e, int r, const char *dir, const char *path, const uint8_t *want)
{
	if (r == 0) {
		CHECK_FILE_REGION(path, "mem", want, MEM);
		return;
	}
	CHECK_ERRMSG(e);
	CHECK_DIR_COUNT(dir, 0, "a failed snapshot left files");
	CHECK_FAILED_STATS(e, r);
}

/* Changes the second half of the region under the engine: drops it,
 * unmaps it, or moves it to `spot` (a reserved range). */
static void change_second_half(int what, uint8_t *half, uint8_t *spot)
{
	switch (what) {
	case DONTNEED:
		CHECK(madvise(half, MEM / 2, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
		break;
	case MUNMAP:
		CHECK(munmap(half, MEM / 2) == 0, "munmap: %s", strerror(errno));
		break;
	case MREMAP: {
		void *moved = mremap(half, MEM / 2, MEM / 2, MREMAP_MAYMOVE | MREMAP_FIXED, spot);
		CHECK(moved == spot, "mremap: %s", strerror(errno));
		break;
	}
	}
}

static int run(int method, int what)
{
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 21 + (uint64_t)what, 0);
	/* The pause-instant content, known without a hook: nothing writes. */
	uint8_t *want = tu_map_anon(MEM);
	memcpy(want, m, MEM);
	uint8_t *spot = what == MREMAP ? tu_map_anon(MEM / 2) : NULL;
	bgsnap_engine *e = st_engine(method, 1u << 20);
	st_add_region(e, "mem", m, MEM);

	uint8_t *half = m + MEM / 2;
	tu_phase("bgsnap_start");
	CHECK_RC(bgsnap_start(e, path), 0, "start: %s", bgsnap_errmsg(e));
	tu_phase(what_name[what]);
	change_second_half(what, half, spot);
	tu_phase("bgsnap_wait after the region was changed under the engine");
	int r = bgsnap_wait(e);
	printf("    %s of the second half during the snapshot: wait returned %s: %s\n", what_name[what],
	       tu_errname(r), bgsnap_errmsg(e));
	check_outcome(e, r, dir, path, want);
	CHECK_WRITABLE("the first half of the region", m, MEM / 2);
	if (what == DONTNEED)
		CHECK_WRITABLE("the dropped half of the region", half, MEM / 2);
	if (what == MREMAP) {
		CHECK_WRITABLE("the moved half", spot, MEM / 2);
		CHECK(memcmp(spot, want + MEM / 2, MEM / 2) == 0, "the moved memory lost its content");
	}
	CHECK(tu_no_children(), "a child process was left");
	bgsnap_destroy(e);
	return 0;
}

static int case_dontneed(void *arg) { return run(*(int *)arg, DONTNEED); }
static int case_munmap(void *arg) { return run(*(int *)arg, MUNMAP); }
static int case_mremap(void *arg) { return run(*(int *)arg, MREMAP); }

int main(void)
{
	struct tu_tally t = { 0 };
	/* The mprotect method gets no event for MADV_DONTNEED (the pages read
	 * back as zeros) and a mapping moved by mremap keeps its PROT_READ: a
	 * documented limit of that method (bgsnap.h, docs/SECURITY.md), so
	 * those two cases are not run for it.  munmap it does catch. */
	const unsigned no_mprotect = ~ST_MASK(BGSNAP_METHOD_MPROTECT);
	printf("skip dontneed/mprotect, mremap/mprotect: the mprotect method cannot observe "
	       "MADV_DONTNEED or mremap (documented limit)\n");
	tu_tally_skip(&t, "mprotect cannot observe MADV_DONTNEED or mremap (documented limit)");
	tu_tally_skip(&t, "mprotect cannot observe MADV_DONTNEED or mremap (documented limit)");
	st_for_each_method(&t, "dontneed", case_dontneed, no_mprotect, 20);
	st_for_each_method(&t, "munmap", case_munmap, ~0u, 20);
	st_for_each_method(&t, "mremap", case_mremap, no_mprotect, 20);
	tu_tally_exit(&t, "t_err_remove");
}
