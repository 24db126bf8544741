/*
 * t_engine_hugetlb_1g.c - a region of one 1 GiB huge page
 * (MAP_HUGETLB|MAP_HUGE_1GB), for every method that can take it, with two
 * writer threads rewriting it while the snapshot runs.  The snapshot must
 * hold the pause-instant content and verify, with a copy buffer far
 * smaller than the huge page (a write fault's 1 GiB copy streams through
 * it); the file then restores eagerly and lazily (a whole 1 GiB page on
 * the first touch) into 1 GiB hugetlb memory exactly, staying on the huge
 * page.  fork runs only when a second 1 GiB page is free (its
 * copy-on-write of the written page takes one).
 *
 * Needs a free 1 GiB huge page: as root it raises
 * /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages and puts the
 * old value back at exit (also on SIGTERM/SIGINT); otherwise, or when the
 * kernel cannot find 1 GiB of contiguous memory, it skips with the reason.
 * Not among the ThreadSanitizer tests: its shadow of several GiB of touched
 * memory would not fit beside the rest; the racing code is the same as
 * with 2 MiB pages (t_engine_hugetlb, t_restore_lazy_shared).
 * timeout: 900
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include "snaptest.h"
#include "hugepool.h"

#define GIB (1ul << 30)
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_1GB
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif
#define DIR1G "/sys/kernel/mm/hugepages/hugepages-1048576kB"

/* Free 1 GiB pages after raising the pool to `want` free ones (root). */
static long reserve_pages(long want)
{
	char why[300];
	long got = hp_reserve(DIR1G, want, 1, why, sizeof(why));
	if (got < 0)
		SKIP("1 GiB huge pages: %s", why);
	return got;
}

static uint8_t *map_1g(void)
{
	uint8_t *m = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB,
	                  -1, 0);
	CHECK(m != MAP_FAILED, "mmap of a 1 GiB huge page: %s", strerror(errno));
	return m;
}

static uint64_t hugetlb_bytes(const void *p, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	CHECK(f != NULL, "/proc/self/smaps: %s", strerror(errno));
	uint64_t lo = (uintptr_t)p, hi = lo + len, a = 0, b = 0, sum = 0;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long x, y, kb;
		if (sscanf(line, "%llx-%llx ", &x, &y) == 2) {
			a = x;
			b = y;
		} else if (a < hi && b > lo && (sscanf(line, "Private_Hugetlb: %llu kB", &kb) == 1 ||
		                                sscanf(line, "Shared_Hugetlb: %llu kB", &kb) == 1)) {
			sum += kb << 10;
		}
	}
	fclose(f);
	return sum;
}

static void check_same(const uint8_t *got, const uint8_t *want, const char *what)
{
	for (size_t pg = 0; pg < GIB / TU_PAGE; pg++)
		CHECK(!memcmp(got + pg * TU_PAGE, want + pg * TU_PAGE, TU_PAGE), "%s: page %zu differs", what, pg);
}

static void check_restores(const char *path, const uint8_t *want)
{
	char err[512] = "";
	bgsnap_reader *rd = NULL;
	CHECK_RC(bgsnap_reader_open(&rd, path, err, sizeof(err)), 0, "reader_open: %s", err);
	int idx = bgsnap_reader_find_region(rd, "huge");
	CHECK(idx >= 0, "no region 'huge' in %s", path);
	tu_phase("eager restore into a 1 GiB huge page");
	uint8_t *dst = map_1g();
	struct bgsnap_restore_target t = { (unsigned)idx, dst, GIB };
	CHECK_RC(bgsnap_restore_reader(rd, &t, 1, 2, err, sizeof(err)), 0, "eager restore: %s", err);
	check_same(dst, want, "eager restore");
	CHECK(hugetlb_bytes(dst, GIB) == GIB, "the restored memory is on %llu bytes of huge pages",
	      (unsigned long long)hugetlb_bytes(dst, GIB));
	munmap(dst, GIB);
	tu_phase("lazy restore into a 1 GiB huge page");
	dst = map_1g();
	t.dst = dst;
	bgsnap_lazy *l = NULL;
	CHECK_RC(bgsnap_lazy_restore_start(&l, rd, &t, 1, err, sizeof(err)), 0, "lazy restore: %s", err);
	/* The last page first: the whole huge page must come with it. */
	check_same(dst, want, "lazy restore (read while the prefetch runs)");
	CHECK_RC(bgsnap_lazy_wait(l), 0, "lazy wait: %s", bgsnap_lazy_errmsg(l));
	struct bgsnap_lazy_stats ls;
	CHECK_RC(bgsnap_lazy_get_stats(l, &ls, sizeof ls), 0, "lazy stats");
	printf("    lazy: usable %llu us, total %llu us, %llu on demand, %llu prefetched\n",
	       (unsigned long long)ls.usable_us, (unsigned long long)ls.total_us,
	       (unsigned long long)ls.pages_demand, (unsigned long long)ls.pages_prefetched);
	CHECK(ls.pages_demand + ls.pages_prefetched == GIB / TU_PAGE && !ls.pages_failed,
	      "lazy restore installed %llu + %llu pages of %lu (%llu failed)", (unsigned long long)ls.pages_demand,
	      (unsigned long long)ls.pages_prefetched, GIB / TU_PAGE, (unsigned long long)ls.pages_failed);
	CHECK(hugetlb_bytes(dst, GIB) == GIB, "the lazily restored memory is on %llu bytes of huge pages",
	      (unsigned long long)hugetlb_bytes(dst, GIB));
	bgsnap_lazy_free(l);
	munmap(dst, GIB);
	bgsnap_reader_close(rd);
}

static int case_1g(void *arg)
{
	int method = *(int *)arg;
	char path[600];
	snprintf(path, sizeof(path), "%s/s1g.bgs", tu_tmpdir());
	uint8_t *mem = map_1g();
	tu_fill(mem, GIB, 91, 5);
	struct tu_writers w;
	tu_writers_start(&w, 2, mem, GIB);
	struct st_host h = { .base = mem, .len = GIB, .w = &w, .copy = tu_map_anon(GIB) };
	/* 1 MiB: a write fault's copy of the 1 GiB page streams through it. */
	bgsnap_engine *e = st_engine(method, 1u << 20);
	st_add_region(e, "huge", mem, GIB);
	st_set_hooks(e, &h);
	CHECK(hugetlb_bytes(mem, GIB) == GIB, "the region is not on its 1 GiB page");
	tu_phase("snapshot of a 1 GiB huge page");
	CHECK_RC(bgsnap_start(e, path), 0, "start: %s", bgsnap_errmsg(e));
	CHECK_RC(bgsnap_wait(e), 0, "wait: %s", bgsnap_errmsg(e));
	struct bgsnap_stats st;
	CHECK_RC(bgsnap_get_stats(e, &st, sizeof st), 0, "get_stats");
	printf("    %s: pause %llu us, copy buffer %llu bytes (peak %llu), %llu pages faulted\n",
	       bgsnap_method_name(method), (unsigned long long)st.pause_us,
	       (unsigned long long)st.copybuf_capacity, (unsigned long long)st.copybuf_peak,
	       (unsigned long long)st.pages_faulted);
	CHECK_FILE_REGION(path, "huge", h.copy, GIB);
	/* A write fault may copy the whole 1 GiB page (fork's copy-on-write):
	 * seconds on a loaded machine, not a hang. */
	tu_writers_check_progress(__FILE__, __LINE__, &w, 30000);
	CHECK(hugetlb_bytes(mem, GIB) == GIB, "after the snapshot the region is not on its 1 GiB page");
	bgsnap_destroy(e);
	tu_writers_stop(&w);
	/* The region's page goes back to the pool for the restore targets. */
	munmap(mem, GIB);
	check_restores(path, h.copy);
	unlink(path);
	munmap(h.copy, GIB);
	return 0;
}

/* Every free 1 GiB page written once: pages just reserved were never
 * touched by the guest, and their first use (the hypervisor backing them,
 * ~3.5 s per GiB here) would land inside a write fault of the test. */
static void touch_pool(long pages)
{
	size_t len = (size_t)(pages > 2 ? 2 : pages) * GIB;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_1GB,
	                  -1, 0);
	if (m == MAP_FAILED)
		return;   /* the cases say what is wrong */
	memset(m, 0, len);
	munmap(m, len);
}

int main(void)
{
	long free_pages = reserve_pages(2);
	touch_pool(free_pages);
	struct tu_tally t = { 0 };
	unsigned mask = ~0u;
	if (free_pages < 2) {
		mask &= ~ST_MASK(BGSNAP_METHOD_FORK);
		printf("skip 1g/fork: its copy-on-write needs a second free 1 GiB page, %ld free\n", free_pages);
		tu_tally_skip(&t, "fork needs a second free 1 GiB page");
	}
	st_for_each_method(&t, "1g", case_1g, mask, 300);
	hp_put_back();
	tu_tally_exit(&t, "t_engine_hugetlb_1g");
}
