/*
 * t_restore_lazy_shared - lazy restore into shared memory, as a virtual
 * machine monitor backs guest RAM: a memfd (shmem) and a memfd of 2 MiB
 * huge pages (MFD_HUGETLB), both mapped MAP_SHARED.
 *  - pages read and written by several threads while the prefetch runs
 *    hold the snapshot's bytes; afterwards the memory, a second mapping of
 *    the same memfd and pread on its descriptor all hold exactly the
 *    snapshot (the pages are the file's); every page is installed exactly
 *    once (demand + prefetched == total);
 *  - a memfd whose file already has a page (written through another
 *    mapping) is refused; a page written through the descriptor during the
 *    restore is either reported (-EBUSY) or, when the restore had already
 *    installed it, simply holds the write: never silently wrong;
 *  - a hugetlb target is served a whole 2 MiB page per fault.
 * Reserves 2 MiB huge pages when root (put back at exit); the hugetlb
 * case is skipped with the reason otherwise.
 * tags: concurrency
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "testutil.h"
#include "hugepool.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004u
#endif
#define HUGE (2u << 20)
#define HUGEDIR "/sys/kernel/mm/hugepages/hugepages-2048kB"
#define REGION_PAGES 4096u            /* 16 MiB: 8 huge pages */
#define NEED_FREE (2 * REGION_PAGES * TU_PAGE / HUGE)

static char g_path[512];
static struct fg_spec g_s;
static char no_huge[320];   /* why the hugetlb case cannot run, "" if it can */

static void reserve_pages(void)
{
	if (hp_reserve(HUGEDIR, (long)NEED_FREE, (long)NEED_FREE, no_huge, sizeof(no_huge)) >= 0)
		no_huge[0] = '\0';
}

static bgsnap_reader *open_r(const char *path)
{
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open %s: %s", path, err);
	return r;
}

/* A memfd of len bytes mapped shared; *fd keeps it. */
static uint8_t *map_memfd(size_t len, int huge, int *fd)
{
	*fd = memfd_create("lazy-shared", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
	CHECK(*fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(*fd, (off_t)len) == 0, "ftruncate: %s", strerror(errno));
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

struct toucher {
	pthread_t th;
	uint8_t *dst;
	const uint8_t *want;
	uint64_t pages, seed;
	int write;
	uint64_t bad;
};

/* Random pages: each read must be the snapshot's; a writer writes a page
 * back with its own snapshot bytes after checking it, so the memory
 * stays comparable while writes race the prefetch. */
static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t x = t->seed | 1;
	for (uint64_t k = 0; k < t->pages; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t p = x % t->pages;
		if (memcmp(t->dst + p * TU_PAGE, t->want + p * TU_PAGE, TU_PAGE))
			t->bad++;
		if (t->write)
			memcpy(t->dst + p * TU_PAGE, t->want + p * TU_PAGE, 64);
	}
	return NULL;
}

static void check_stats(bgsnap_lazy *l, const char *what, uint64_t total)
{
	struct bgsnap_lazy_stats st;
	CHECK_RC(bgsnap_lazy_get_stats(l, &st, sizeof st), 0, "stats");
	printf("%s: usable %llu us, total %llu us, %llu pages: %llu on demand, %llu prefetched, %llu zero, "
	       "%llu faults\n", what, (unsigned long long)st.usable_us, (unsigned long long)st.total_us,
	       (unsigned long long)st.pages_total, (unsigned long long)st.pages_demand,
	       (unsigned long long)st.pages_prefetched, (unsigned long long)st.pages_zero,
	       (unsigned long long)st.faults);
	CHECK(st.done == 1 && st.error == 0 && st.pages_failed == 0, "done %d error %d failed %llu", st.done, st.error,
	      (unsigned long long)st.pages_failed);
	CHECK(st.pages_total == total && st.pages_demand + st.pages_prefetched == total,
	      "pages: total %llu, demand %llu + prefetched %llu: every page must be installed exactly once",
	      (unsigned long long)st.pages_total, (unsigned long long)st.pages_demand,
	      (unsigned long long)st.pages_prefetched);
}

/* Region `region` lazily into a fresh memfd, touched by 4 threads (one
 * writing) while the prefetch runs; then the memory, a second mapping of
 * the file and the descriptor must all be the snapshot. */
static int restore_one(unsigned region, int huge)
{
	size_t len = g_s.pages[region] * TU_PAGE;
	int fd;
	uint8_t *m = map_memfd(len, huge, &fd);
	bgsnap_reader *r = open_r(g_path);
	struct bgsnap_restore_target t = { region, m, len };
	bgsnap_lazy *l;
	char err[600];
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), 0, "start: %s", err);
	/* One page of the last huge page at once: with hugetlb the whole huge
	 * page must arrive with it. */
	uint64_t last = g_s.pages[region] - 1;
	CHECK(!memcmp(m + last * TU_PAGE, g_s.mem[region] + last * TU_PAGE, TU_PAGE), "the last page differs");
	if (huge) {
		uint64_t hp = (len - HUGE) / TU_PAGE;
		unsigned char vec[HUGE / TU_PAGE];
		CHECK(mincore(m + hp * TU_PAGE, HUGE, vec) == 0, "mincore: %s", strerror(errno));
		for (unsigned i = 0; i < HUGE / TU_PAGE; i++)
			CHECK(vec[i] & 1, "page %u of the faulted huge page is not in", i);
	}
	struct toucher th[4];
	for (unsigned i = 0; i < 4; i++) {
		th[i] = (struct toucher){ .dst = m, .want = g_s.mem[region], .pages = g_s.pages[region],
		                          .seed = 0x9e3779b97f4a7c15ull * (i + 1), .write = i == 0 };
		CHECK(pthread_create(&th[i].th, NULL, touch_main, &th[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i].th, NULL);
		CHECK(th[i].bad == 0, "toucher %u saw %llu pages differ from the snapshot", i,
		      (unsigned long long)th[i].bad);
	}
	CHECK_RC(bgsnap_lazy_wait(l), 0, "wait: %s", bgsnap_lazy_errmsg(l));
	check_stats(l, huge ? "memfd-hugetlb" : "memfd", g_s.pages[region]);
	bgsnap_lazy_free(l);
	CHECK(!memcmp(m, g_s.mem[region], len), "the restored memory differs from the snapshot");
	/* The pages are the file's: another mapping sees them. */
	uint8_t *alias = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(alias != MAP_FAILED, "second mmap: %s", strerror(errno));
	CHECK(!memcmp(alias, g_s.mem[region], len), "a second mapping of the memfd differs from the snapshot");
	munmap(alias, len);
	if (!huge) {   /* hugetlbfs has no read(2) */
		uint8_t *buf = malloc(len);
		CHECK(buf && pread(fd, buf, len, 0) == (ssize_t)len, "pread: %s", strerror(errno));
		CHECK(!memcmp(buf, g_s.mem[region], len), "pread of the memfd differs from the snapshot");
		free(buf);
	}
	munmap(m, len);
	close(fd);
	bgsnap_reader_close(r);
	return 0;
}

static int case_memfd(void *arg)
{
	(void)arg;
	return restore_one(0, 0);
}

static int case_memfd_hugetlb(void *arg)
{
	(void)arg;
	return restore_one(1, 1);
}

/* A page already in the file (written through another mapping) is
 * refused at the start; a write through the descriptor during the restore
 * is either reported or lands after the page was restored. */
static int case_foreign(void *arg)
{
	(void)arg;
	size_t len = g_s.pages[0] * TU_PAGE;
	int fd;
	uint8_t *m = map_memfd(len, 0, &fd);
	bgsnap_reader *r = open_r(g_path);
	struct bgsnap_restore_target t = { 0, m, len };
	bgsnap_lazy *l = NULL;
	char err[600];
	uint8_t *alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(alias != MAP_FAILED, "second mmap: %s", strerror(errno));
	alias[5 * TU_PAGE] = 1;
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), -EINVAL, "a memfd with a page in it");
	printf("populated through another mapping: %s\n", err);
	CHECK(strstr(err, "populated") && strstr(err, "PUNCH_HOLE"), "message does not say why: %s", err);
	CHECK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)len) == 0, "punch: %s",
	      strerror(errno));
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), 0, "start after the hole punch: %s", err);
	uint8_t page[TU_PAGE];
	memset(page, 0xa5, sizeof(page));
	uint64_t p = g_s.pages[0] - 3;
	CHECK(pwrite(fd, page, TU_PAGE, (off_t)(p * TU_PAGE)) == TU_PAGE, "pwrite: %s", strerror(errno));
	int rc = bgsnap_lazy_wait(l);
	if (rc == -EBUSY) {
		printf("a write through the descriptor before the restore got there: %s\n", bgsnap_lazy_errmsg(l));
		CHECK(strstr(bgsnap_lazy_errmsg(l), "another mapping"), "message does not say why: %s",
		      bgsnap_lazy_errmsg(l));
	} else {
		CHECK_RC(rc, 0, "wait: %s", bgsnap_lazy_errmsg(l));
		printf("the write came after the restore installed the page\n");
		CHECK(!memcmp(m + p * TU_PAGE, page, TU_PAGE), "the write through the descriptor is lost");
		memcpy(m + p * TU_PAGE, g_s.mem[0] + p * TU_PAGE, TU_PAGE);
		CHECK(!memcmp(m, g_s.mem[0], len), "the other pages differ from the snapshot");
	}
	bgsnap_lazy_free(l);
	munmap(alias, len);
	munmap(m, len);
	close(fd);
	bgsnap_reader_close(r);
	return 0;
}

int main(void)
{
	fg_default(&g_s);
	g_s.nregions = 2;
	g_s.pages[0] = REGION_PAGES;
	g_s.pages[1] = REGION_PAGES;
	g_s.max_run = 200;
	fg_build(&g_s);
	snprintf(g_path, sizeof(g_path), "%s/s.bgs", tu_tmpdir());
	fg_write_path(&g_s, g_path);
	char why[256];
	if (bgsnap_method_probe(BGSNAP_METHOD_UFFD, why, sizeof(why)) < 0)
		SKIP("userfaultfd is not usable here: %s", why);
	reserve_pages();
	struct tu_tally tally = { 0 };
	tu_tally_add(&tally, tu_run_case("memfd", case_memfd, NULL, 60));
	tu_tally_add(&tally, tu_run_case("foreign", case_foreign, NULL, 60));
	if (!no_huge[0]) {
		tu_tally_add(&tally, tu_run_case("memfd_hugetlb", case_memfd_hugetlb, NULL, 60));
	} else {
		printf("skip memfd_hugetlb: %s\n", no_huge);
		tu_tally_skip(&tally, no_huge);
	}
	hp_put_back();
	fg_free(&g_s);
	tu_tally_exit(&tally, "lazy restore into shared memory");
}
