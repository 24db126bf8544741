/*
 * t_prephase.c - the write-protect done before the pause (uffd, uffd-signal,
 * mprotect; options.pre_protect) loses no write made before the pause
 * instant.
 *
 * The pause hook writes a few pages itself: the regions are already
 * protected then, so those writes take pre-phase faults (the page is only
 * marked dirty and unprotected).  The resume hook, still inside the pause
 * and before the background writer starts, writes the same pages again.
 * The snapshot must hold the pause hook's bytes: had the pause not
 * protected those pages again, the resume hook's write would go through
 * unseen and the writer would save it.  Cases:
 *   written   - pre-protect on (split over 3 threads for uffd): exactly the
 *               written pages are re-protected;
 *   off       - options.pre_protect = 0: nothing before the pause;
 *   dontneed  - the pause hook also drops pages (MADV_DONTNEED) before the
 *               pause instant: not a failure (the instant has not come),
 *               the snapshot holds zeros there even though the resume hook
 *               writes them.  uffd methods see the event and protect
 *               everything in the pause; mprotect's PROT_READ outlives the
 *               drop, so it re-protects the written pages only.
 *   maps      - mprotect only, as root and with BGSNAP_TEST_SYSCTL=1 (the
 *               limit is system-wide): vm.max_map_count is lowered in the
 *               pause hook so that the pre-phase runs out of mappings while
 *               it splits them for isolated writes; the region gets its
 *               write permission back, the pause protects everything, and
 *               the snapshot is still exact.
 * tags: concurrency
 * timeout: 120
 */
#include <linux/userfaultfd.h>
#include <sys/mman.h>

#include "snaptest.h"

#ifndef UFFD_FEATURE_WP_UNPOPULATED     /* Debian 12's headers (6.1) */
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

#define MEM (4u << 20)

static const size_t written[] = { 3, 100, 101, 102, 103 };
#define NWRITTEN (sizeof(written) / sizeof(written[0]))
#define DROP_FIRST 10u
#define DROP_PAGES 10u

enum { WRITTEN, OFF, DONTNEED, MAPS };

struct host {
	uint8_t *m;
	uint8_t *want;
	int drop;
	int maps;               /* MAPS: write every other page of MAPS_PAGES from page 200 */
	int pause_calls;
};

#define MAPS_PAGES 512u
static const char max_maps_path[] = "/proc/sys/vm/max_map_count";

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;
	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static int on_pause(void *ctx)
{
	struct host *h = ctx;
	h->pause_calls++;
	if (h->drop && madvise(h->m + DROP_FIRST * TU_PAGE, DROP_PAGES * TU_PAGE, MADV_DONTNEED) != 0)
		return -1;
	for (size_t i = 0; i < NWRITTEN; i++)
		memset(h->m + written[i] * TU_PAGE, 0xA1, TU_PAGE);
	if (h->maps) {
		/* Room for a few dozen more mappings, not for 2 x 256 splits.
		 * Only system calls while the limit is low: an allocator that
		 * needs a mapping then (a sanitizer's) would fail.  Should this
		 * process die before it puts the limit back, main() does. */
		long was = read_long(max_maps_path);
		int n = count_maps();
		int fd = open(max_maps_path, O_WRONLY | O_CLOEXEC);
		if (was <= 0 || n < 0 || fd < 0)
			return -1;
		char low[32], orig[32];
		int ll = snprintf(low, sizeof(low), "%d\n", n + 40);
		int ol = snprintf(orig, sizeof(orig), "%ld\n", was);
		if (pwrite(fd, low, (size_t)ll, 0) != ll) {
			close(fd);
			return -1;
		}
		for (size_t pg = 200; pg < 200 + MAPS_PAGES; pg += 2)
			h->m[pg * TU_PAGE] ^= 0x5A;
		int back = pwrite(fd, orig, (size_t)ol, 0) == ol;
		close(fd);
		if (!back)
			return -1;
	}
	return 0;
}

static int on_save(bgsnap_state *st, void *ctx)
{
	(void)st;
	struct host *h = ctx;
	memcpy(h->want, h->m, MEM);
	return 0;
}

/* Pages the pause hook does not write: written after the pause, they must
 * be caught too (whether the pause re-protected dirty runs or everything). */
static const size_t untouched[] = { 0, 201, 1000 };
#define NUNTOUCHED (sizeof(untouched) / sizeof(untouched[0]))

static void on_resume(void *ctx)
{
	struct host *h = ctx;
	for (size_t i = 0; i < NWRITTEN; i++)
		memset(h->m + written[i] * TU_PAGE, 0xB2, TU_PAGE);
	for (size_t i = 0; i < NUNTOUCHED; i++)
		memset(h->m + untouched[i] * TU_PAGE, 0xB2, TU_PAGE);
	if (h->drop)
		memset(h->m + (DROP_FIRST + 2) * TU_PAGE, 0xB2, TU_PAGE);
}

static int run(int method, int mode)
{
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	struct host h = { .m = tu_map_anon(MEM), .want = tu_map_anon(MEM), .drop = mode == DONTNEED,
	                  .maps = mode == MAPS };
	if (mode == MAPS) {
		const char *opt = getenv("BGSNAP_TEST_SYSCTL");
		if (!opt || strcmp(opt, "1") != 0)
			SKIP("lowers the system-wide vm.max_map_count for a moment: runs only with "
			     "BGSNAP_TEST_SYSCTL=1 (set by .ci/run; on a machine of its own)");
		if (geteuid() != 0)
			SKIP("lowering vm.max_map_count needs root");
		if (read_long(max_maps_path) <= 0)
			SKIP("%s is not readable", max_maps_path);
	}
	tu_fill(h.m, MEM, 41, 0);

	struct bgsnap_options o;
	bgsnap_options_init(&o);
	CHECK(o.pre_protect == 1, "bgsnap_options_init left pre_protect %u, the documented default is 1", o.pre_protect);
	o.method = method;
	if (mode == OFF)
		o.pre_protect = 0;
	/* The uffd methods split the (pre-)protect over helper threads above
	 * 256 MiB; here too, so that the split is covered. */
	if (mode == WRITTEN)
		o.wp_threads = 3;
	bgsnap_engine *e = NULL;
	CHECK_RC(bgsnap_create(&e, &o), 0, "bgsnap_create");
	st_add_region(e, "mem", h.m, MEM);
	struct bgsnap_hooks hk = { .pause = on_pause, .save_state = on_save, .resume = on_resume, .ctx = &h };
	/* One pause per snapshot here (its hook drops pages); the finishing
	 * pause is t_finish_paused_hooks'. */
	CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FINISH_PAUSED, 0), 0, "finish-paused off");
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "set_hooks: %s", bgsnap_errmsg(e));
	st_snapshot_ok(e, path);
	CHECK(h.pause_calls == 1, "pause hook called %d times", h.pause_calls);

	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(e, &s, sizeof s), 0, "get_stats");
	printf("    pause %llu us, write-protect in it %llu us, before it %llu us, re-protected %llu pages\n",
	       (unsigned long long)s.pause_us, (unsigned long long)s.wp_us, (unsigned long long)s.prewp_us,
	       (unsigned long long)s.reprotect_pages);
	/* The snapshot holds the pause hook's writes (and zeros where it
	 * dropped pages), never the resume hook's. */
	CHECK_FILE_REGION(path, "mem", h.want, MEM);
	for (size_t i = 0; i < NWRITTEN; i++)
		CHECK(h.want[written[i] * TU_PAGE] == 0xA1, "the pause hook's write to page %zu is not in the "
		      "pause-instant copy: the test itself is wrong", written[i]);
	/* uffd pre-protects only on kernels with the discard events and
	 * WP_UNPOPULATED (Linux 6.4+); elsewhere all of it is in the pause. */
	const uint64_t need = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
	                      UFFD_FEATURE_WP_UNPOPULATED;
	int can_pre = method == BGSNAP_METHOD_MPROTECT || (s.uffd_features & need) == need;
	if (!can_pre) {
		printf("    this kernel's userfaultfd lacks what pre-protect needs: everything was protected in the pause\n");
		CHECK(s.prewp_us == 0 && s.reprotect_pages == 0, "pre-protect ran without the features it needs: "
		      "prewp_us %llu, reprotect_pages %llu", (unsigned long long)s.prewp_us,
		      (unsigned long long)s.reprotect_pages);
		mode = OFF;   /* the snapshot content was checked above */
	}
	switch (mode) {
	case WRITTEN:
		CHECK(s.prewp_us > 0, "pre-protect is on but took no time: was it done?");
		CHECK(s.reprotect_pages == NWRITTEN, "the pause re-protected %llu pages; the pause hook wrote %zu",
		      (unsigned long long)s.reprotect_pages, NWRITTEN);
		break;
	case OFF:
		CHECK(s.prewp_us == 0 && s.reprotect_pages == 0, "pre_protect = 0 but prewp_us %llu, reprotect_pages %llu",
		      (unsigned long long)s.prewp_us, (unsigned long long)s.reprotect_pages);
		break;
	case DONTNEED:
		if (method == BGSNAP_METHOD_MPROTECT)
			CHECK(s.reprotect_pages == NWRITTEN, "mprotect re-protected %llu pages; the pause hook wrote %zu",
			      (unsigned long long)s.reprotect_pages, NWRITTEN);
		else
			CHECK(s.reprotect_pages == 0, "after a MADV_DONTNEED before the pause the pause must protect "
			      "everything, but it re-protected %llu pages only", (unsigned long long)s.reprotect_pages);
		for (size_t i = 0; i < DROP_PAGES * TU_PAGE; i++)
			CHECK(h.want[DROP_FIRST * TU_PAGE + i] == 0, "dropped pages are not zero at the pause: test is wrong");
		break;
	case MAPS:
		CHECK(s.prewp_us > 0, "pre-protect is on but took no time: was it done?");
		CHECK(s.reprotect_pages == 0, "the pre-phase ran out of mappings, so the pause must protect everything, "
		      "but it re-protected %llu pages only", (unsigned long long)s.reprotect_pages);
		break;
	}
	/* The host runs on: nothing is left protected. */
	CHECK_WRITABLE("the region after the snapshot", h.m, MEM);
	bgsnap_destroy(e);
	return 0;
}

static int case_written(void *arg) { return run(*(int *)arg, WRITTEN); }
static int case_off(void *arg) { return run(*(int *)arg, OFF); }
static int case_dontneed(void *arg) { return run(*(int *)arg, DONTNEED); }
static int case_maps(void *arg) { return run(*(int *)arg, MAPS); }

int main(void)
{
	struct tu_tally t = { 0 };
	const unsigned all = ST_MASK_TRACKING;
	st_for_each_method(&t, "written", case_written, all, 30);
	st_for_each_method(&t, "off", case_off, all, 30);
	st_for_each_method(&t, "dontneed", case_dontneed, all, 30);
	/* The case lowers a system-wide limit in a child: should the child die
	 * before it puts it back, the parent does. */
	long orig = read_long(max_maps_path);
	st_for_each_method(&t, "maps", case_maps, ST_MASK(BGSNAP_METHOD_MPROTECT), 30);
	if (orig > 0 && read_long(max_maps_path) != orig) {
		printf("putting %s back to %ld\n", max_maps_path, orig);
		write_long(max_maps_path, orig);
	}
	tu_tally_exit(&t, "t_prephase");
}
