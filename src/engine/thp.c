/*
 * thp.c - huge pages kept whole across a snapshot (thp.h).
 *
 * A region counts as huge when at least half of it was backed by
 * transparent huge pages when the run started (AnonHugePages of the
 * mappings it overlaps, shared out by overlap): only memory that was huge is
 * collapsed, so a sparse region never grows to whole huge pages.  The
 * survey reads /proc/self/smaps before the pause (the kernel walks the
 * page tables for it: milliseconds per GiB of 4 KiB pages), never in it.
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/engine.h"
#include "engine/thp.h"
#include "util/clock.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define HUGE_BYTES (2ull << 20)

/* Adds the huge bytes of mapping [lo, hi) to each region it overlaps. */
static void credit(struct bgsnap_engine *e, uint64_t lo, uint64_t hi, uint64_t huge, uint64_t *acc)
{
	if (!huge || hi <= lo)
		return;
	for (uint32_t i = 0; i < e->region_count; i++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[i].addr, b = a + e->regions[i].len;
		uint64_t s = a > lo ? a : lo, t = b < hi ? b : hi;
		if (s < t)
			acc[i] += (uint64_t)((double)huge * (double)(t - s) / (double)(hi - lo));
	}
}

void thp_survey(struct bgsnap_engine *e)
{
	for (uint32_t i = 0; i < e->region_count; i++)
		e->regions[i].huge = 0;
	/* Best effort throughout: without the figures nothing is collapsed. */
	uint64_t *acc = calloc(e->region_count ? e->region_count : 1, sizeof(*acc));
	FILE *f = acc ? fopen("/proc/self/smaps", "re") : NULL;
	if (!f) {
		free(acc);
		return;
	}
	char line[512];
	uint64_t lo = 0, hi = 0, kb;
	unsigned long long a, b;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &a, &b) == 2) {
			lo = a;
			hi = b;
		} else if (sscanf(line, "AnonHugePages: %llu kB", &a) == 1) {
			kb = a;
			credit(e, lo, hi, kb << 10, acc);
		}
	}
	fclose(f);
	for (uint32_t i = 0; i < e->region_count; i++)
		e->regions[i].huge = acc[i] >= e->regions[i].len / 2 && e->regions[i].len >= HUGE_BYTES;
	free(acc);
}

void thp_recollapse(struct bgsnap_engine *e)
{
	uint64_t t0 = now_ns(), blocks = 0, failed = 0;
	for (uint32_t i = 0; i < e->region_count; i++) {
		struct region *r = &e->regions[i];
		if (!r->huge)
			continue;
		r->huge = 0;
		uint64_t a = ((uint64_t)(uintptr_t)r->addr + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
		uint64_t b = ((uint64_t)(uintptr_t)r->addr + r->len) & ~(HUGE_BYTES - 1);
		/* One block per call: a block the host is writing may refuse
		 * (EAGAIN) without the rest of the region being skipped. */
		for (; a < b; a += HUGE_BYTES, blocks++)
			if (madvise((void *)(uintptr_t)a, HUGE_BYTES, MADV_COLLAPSE) != 0)
				failed++;
	}
	if (blocks)
		engine_log(e, BGSNAP_LOG_DEBUG, "huge pages: %llu of %llu blocks collapsed again in %llu us",
		           (unsigned long long)(blocks - failed), (unsigned long long)blocks,
		           (unsigned long long)((now_ns() - t0) / 1000));
}
