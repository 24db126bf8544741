/*
 * restore.h - `bgsnap bench --restore`: restores the snapshot just
 * taken into fresh memory, eagerly and/or lazily, and checks the restored
 * memory with the bench's oracle (already advanced to the snapshot's step
 * counts by the verification).
 */
#ifndef BGSNAP_BENCH_RESTORE_H
#define BGSNAP_BENCH_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oracle.h"

/* UNCACHED: the file is dropped from the page cache before the read and
 * before each restore. */
enum { BENCH_RESTORE_EAGER = 1, BENCH_RESTORE_LAZY = 2, BENCH_RESTORE_UNCACHED = 4, BENCH_RESTORE_MAP = 8 };

struct bench_restore_result {
	int which;                 /* BENCH_RESTORE_* that ran                 */
	double restore_ms;         /* eager: bgsnap_restore until all is back   */
	double read_ms;            /* the same file read with 1 MiB preads (dd) */
	uint64_t file_bytes;
	int64_t huge_pages;        /* eager: the target's huge pages after it   */
	uint64_t resume_us;        /* lazy: bgsnap_lazy_restore_start returned  */
	double lazy_total_ms;      /* lazy: until every page was in            */
	uint64_t lazy_demand, lazy_prefetched;
	/* lazy: first read of TOUCH_SAMPLES pages spread over the memory,
	 * right after it became usable, median and 99th percentile (a page
	 * the prefetch installed first costs no fault) */
	double touch_p50_us, touch_p99_us;
	/* map: bgsnap_restore_map into fresh memory, checksums checked (the
	 * pages read through the mapping), then again without the check */
	double map_ms, map_noverify_ms;
	unsigned map_mapped;       /* map: targets mapped (1), not copied (0)   */
	bool verified;             /* every restored page matched the oracle    */
	char msg[512];             /* why not                                  */
};

/* Parses "eager", "lazy", "map", "both" (eager and lazy), "all", or a
 * comma-separated list of them; returns the mask or -1. */
int bench_restore_parse(const char *s);

/*
 * Runs the restores in `which` of snapshot `path` (region "mem", `mem_bytes`)
 * into fresh memory of kind `memory` (enum wl_memory), `threads` threads
 * for eager.
 * Returns 0 with *out filled (out->verified says whether the content
 * matched), or -1 with out->msg when a restore could not run.
 */
int bench_restore(const char *path, int which, int memory, size_t mem_bytes, unsigned threads,
                  const wl_oracle *oracle, struct bench_restore_result *out);

#endif
