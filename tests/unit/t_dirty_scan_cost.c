/*
 * t_dirty_scan_cost - what the write tracker's primitives cost on this
 * machine, printed (nothing about time is asserted): one PAGEMAP_SCAN
 * walk of clean populated memory with and without re-arming
 * (PM_SCAN_WP_MATCHING), of 4 KiB pages and of transparent huge pages;
 * the same walk with 1 % of the pages written (the cost of re-arming a
 * written entry); the collection before the pause against the one in it;
 * and, for bgsnap_reset, protecting one page per UFFDIO_WRITEPROTECT call
 * against a memcpy of a page.  What it asserts: a clean walk reports
 * nothing, a walk after K scattered writes reports exactly K pages, and a
 * collection with re-arm followed by an accumulating one reports the union.
 *
 * BGSNAP_SCAN_COST_MIB sets the size (default 64; the figures in
 * docs/MEASUREMENTS.md are for 1024).
 *
 * timeout: 120
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "engine/dirty.h"
#include "os/uffd_sys.h"
#include "testutil.h"
#include "util/clock.h"

#define REPS 5

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return v[n / 2];
}

/* One raw walk of the region with `flags`: ms, and the pages reported. */
static double raw_walk(int pagemap, const struct region *rg, uint64_t flags, uint64_t *pages)
{
	static struct page_region vec[4096];
	uint64_t start = (uint64_t)(uintptr_t)rg->addr, end = start + rg->len, t0 = now_ns();
	*pages = 0;
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a), .flags = flags, .start = start, .end = end,
			.vec = (uint64_t)(uintptr_t)vec, .vec_len = 4096,
			.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(pagemap, PAGEMAP_SCAN, &a);
		CHECK(n >= 0, "PAGEMAP_SCAN: %s", strerror(errno));
		for (long i = 0; i < n; i++)
			*pages += (vec[i].end - vec[i].start) / TU_PAGE;
		if (a.walk_end >= end)
			break;
		start = a.walk_end;
	}
	return (double)(now_ns() - t0) / 1e6;
}

static void write_scattered(uint8_t *m, uint64_t pages, uint64_t k, uint8_t v)
{
	uint64_t stride = pages / k;
	for (uint64_t i = 0; i < k; i++)
		m[i * stride * TU_PAGE + 3] = v;
}

static void walks(const char *kind, struct region *rg, double gib)
{
	struct bgsnap_err err = { 0 };
	struct dirty_tracker d;
	CHECK_RC(dirty_open(&d, rg, 1, &err), 0, "open: %s", err.msg);
	uint64_t t0 = now_ns();
	CHECK_RC(dirty_scan(&d, rg, 1, &err), 0, "arm: %s", err.msg);
	printf("%s: arming every page (first scan): %.1f ms/GiB\n", kind, (double)(now_ns() - t0) / 1e6 / gib);
	static const struct { const char *name; uint64_t flags; } modes[] = {
		{ "collect only", 0 },
		{ "collect, check wp-async", PM_SCAN_CHECK_WPASYNC },
		{ "collect and re-arm (WP_MATCHING)", PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC },
	};
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		double v[REPS];
		for (int i = 0; i < REPS; i++) {
			uint64_t found;
			v[i] = raw_walk(d.pagemap, rg, modes[m].flags, &found) / gib;
			CHECK(found == 0, "%s, %s: a clean walk reported %llu pages", kind, modes[m].name,
			      (unsigned long long)found);
		}
		double med = median(v, REPS);
		printf("%s: clean walk, %s: %.2f ms/GiB (min %.2f)\n", kind, modes[m].name, med, v[0]);
	}
	/* 1 % written, scattered: the pause's walk re-arms them. */
	uint64_t k = rg->pages / 100 ? rg->pages / 100 : 1;
	double v[REPS];
	for (int i = 0; i < REPS; i++) {
		write_scattered(rg->addr, rg->pages, k, (uint8_t)i);
		uint64_t found;
		v[i] = raw_walk(d.pagemap, rg, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, &found) / gib;
		CHECK(found >= k && found <= k * 512, "%s: %llu pages reported for %llu written", kind,
		      (unsigned long long)found, (unsigned long long)k);
	}
	printf("%s: walk with re-arm after 1 %% written (%llu pages): %.2f ms/GiB\n", kind,
	       (unsigned long long)k, median(v, REPS));
	/* The pre-scan: collect and re-arm before the pause, then the pause's
	 * accumulating walk finds only what was written in between. */
	write_scattered(rg->addr, rg->pages, k, 0x77);
	t0 = now_ns();
	CHECK_RC(dirty_collect_ex(&d, rg, 1, 1, 0, &err), 0, "pre-scan: %s", err.msg);
	double pre = (double)(now_ns() - t0) / 1e6;
	uint64_t first = d.dirty_pages;
	rg->addr[5] = 1;   /* written between the two */
	t0 = now_ns();
	CHECK_RC(dirty_collect_ex(&d, rg, 1, 1, 1, &err), 0, "pause scan: %s", err.msg);
	double in = (double)(now_ns() - t0) / 1e6;
	CHECK(dirty_test(&d, 0, 0), "the page written between the pre-scan and the pause is missing");
	CHECK(d.dirty_pages >= first && d.dirty_pages <= first + 512, "the union counts %llu after %llu",
	      (unsigned long long)d.dirty_pages, (unsigned long long)first);
	for (uint64_t i = 0, stride = rg->pages / k; i < k; i++)
		CHECK(dirty_test(&d, 0, i * stride), "page %llu written before the pre-scan is missing from the union",
		      (unsigned long long)(i * stride));
	printf("%s: 1 %% written: pre-scan (host running) %.2f ms, pause scan after it %.2f ms (%.2f ms/GiB)\n",
	       kind, pre, in, in / gib);
	dirty_close(&d, rg, 1);
}

/* Reset's primitives: per-page protect and unprotect calls against memcpy. */
static void per_page(struct region *rg)
{
	struct bgsnap_err err = { 0 };
	struct dirty_tracker d;
	CHECK_RC(dirty_open(&d, rg, 1, &err), 0, "open: %s", err.msg);
	CHECK_RC(dirty_scan(&d, rg, 1, &err), 0, "arm: %s", err.msg);
	uint64_t k = 1024 < rg->pages ? 1024 : rg->pages, stride = rg->pages / k;
	uint64_t base = (uint64_t)(uintptr_t)rg->addr;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < k; i++)
		CHECK_RC(uffd_wp(d.uffd, base + i * stride * TU_PAGE, TU_PAGE, 0, 0, 100), 0, "unprotect");
	double un = (double)(now_ns() - t0) / 1e3 / (double)k;
	t0 = now_ns();
	for (uint64_t i = 0; i < k; i++)
		CHECK_RC(uffd_wp(d.uffd, base + i * stride * TU_PAGE, TU_PAGE, 1, 0, 100), 0, "protect");
	double pr = (double)(now_ns() - t0) / 1e3 / (double)k;
	t0 = now_ns();
	CHECK_RC(uffd_wp(d.uffd, base, k * TU_PAGE, 1, 0, 100), 0, "protect a run");
	double run = (double)(now_ns() - t0) / 1e3 / (double)k;
	uint8_t *src = tu_map_anon(k * TU_PAGE);
	memset(src, 5, k * TU_PAGE);
	t0 = now_ns();
	for (uint64_t i = 0; i < k; i++)
		memcpy(rg->addr + i * stride * TU_PAGE, src + i * TU_PAGE, TU_PAGE);
	double cp_armed = (double)(now_ns() - t0) / 1e3 / (double)k;
	t0 = now_ns();
	for (uint64_t i = 0; i < k; i++)
		memcpy(rg->addr + i * stride * TU_PAGE, src + i * TU_PAGE, TU_PAGE);
	double cp = (double)(now_ns() - t0) / 1e3 / (double)k;
	printf("per page (%llu scattered pages): UFFDIO_WRITEPROTECT unprotect %.2f us, protect %.2f us, "
	       "protect as one run of %llu pages %.3f us/page; memcpy %.3f us (into an armed page, its "
	       "write fault included: %.2f us)\n", (unsigned long long)k, un, pr, (unsigned long long)k, run, cp,
	       cp_armed);
	munmap(src, k * TU_PAGE);
	dirty_close(&d, rg, 1);
}

int main(void)
{
	struct bgsnap_err err = { 0 };
	if (dirty_probe(&err))
		SKIP("%s", err.msg);
	const char *env = getenv("BGSNAP_SCAN_COST_MIB");
	uint64_t mib = env && atoll(env) > 0 ? (uint64_t)atoll(env) : 64;
	size_t len = (size_t)mib << 20;
	double gib = (double)mib / 1024.0;
	/* 4 KiB pages. */
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap");
	(void)madvise(m, len, MADV_NOHUGEPAGE);
	memset(m, 1, len);
	struct region rg = { .addr = m, .len = len, .pages = len / TU_PAGE };
	strcpy(rg.name, "4k");
	walks("4 KiB pages", &rg, gib);
	per_page(&rg);
	munmap(m, len);
	/* Transparent huge pages, 2 MiB aligned. */
	uint8_t *raw = mmap(NULL, len + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(raw != MAP_FAILED, "mmap");
	uint8_t *h = (uint8_t *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
	if (madvise(h, len, MADV_HUGEPAGE) == 0) {
		memset(h, 1, len);
		rg.addr = h;
		strcpy(rg.name, "thp");
		walks("THP", &rg, gib);
	} else {
		printf("THP: madvise(MADV_HUGEPAGE) refused, not measured\n");
	}
	munmap(raw, len + (2u << 20));
	printf("ok\n");
	return 0;
}
