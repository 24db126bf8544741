/*
 * restore_thp.c - a restore into memory that wants transparent huge pages
 * leaves it on huge pages.
 *
 * UFFDIO_COPY installs 4 KiB pages, and nothing merges them soon after
 * (khugepaged scans slowly): a host restored that way would run on small
 * pages, which on a virtual machine with nested paging costs it a large
 * part of its speed.  So eager restore writes such a target in place
 * (each first write faults in a whole huge page) and collapses what is
 * still split afterwards (MADV_COLLAPSE, Linux 6.1+, best effort).
 *
 * A target wants huge pages when its mappings say so: VmFlags "hg"
 * (MADV_HUGEPAGE), or THP "always" without "nh" (MADV_NOHUGEPAGE).
 */
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "restore/restore_int.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define THP_BYTES (2ull << 20)

static int thp_always(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	if (!f)
		return 0;
	int r = fgets(buf, sizeof(buf), f) && strstr(buf, "[always]");
	fclose(f);
	return r;
}

/* The VmFlags of every mapping overlapping [lo, hi): all must want huge
 * pages. */
int rst_thp_target(const void *dst, uint64_t len)
{
	uint64_t lo = (uintptr_t)dst, hi = lo + len;
	if (len < THP_BYTES)
		return 0;
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return 0;
	int always = thp_always(), in = 0, seen = 0, want = 1;
	char line[1024];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b;
		if (sscanf(line, "%llx-%llx ", &a, &b) == 2) {
			in = a < hi && b > lo;
			/* hugetlb and file mappings never get THP from a fault. */
			if (in && strchr(line, '/'))
				want = 0;
			continue;
		}
		if (!in || strncmp(line, "VmFlags:", 8))
			continue;
		seen = 1;
		if (strstr(line, " nh") || (!strstr(line, " hg") && !always))
			want = 0;
	}
	fclose(f);
	return seen && want;
}

void rst_thp_collapse(const void *dst, uint64_t len)
{
	uint64_t a = ((uintptr_t)dst + THP_BYTES - 1) & ~(THP_BYTES - 1);
	uint64_t b = ((uintptr_t)dst + len) & ~(THP_BYTES - 1);
	/* One block per call: a refused block does not skip the rest. */
	for (; a < b; a += THP_BYTES)
		(void)madvise((void *)(uintptr_t)a, THP_BYTES, MADV_COLLAPSE);
}
