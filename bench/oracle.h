/*
 * oracle.h - the bench's consistency oracle: the content every page of the
 * workload's region must have after given step counts of each writer (the
 * content model is workload.h's), recomputed by replaying the writers'
 * picks, and the state blob that records those step counts in a snapshot.
 * Nothing of it runs during the pause: the writers only record their step
 * counts there.
 */
#ifndef BGSNAP_BENCH_ORACLE_H
#define BGSNAP_BENCH_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bgsnap.h>

#include "workload.h"

/* The "bench.oracle" state blob: params + step counts, little-endian. */
#define WL_BLOB_NAME "bench.oracle"
size_t wl_blob_size(unsigned threads);
void wl_blob_encode(void *buf, const struct wl_params *p, const uint64_t *steps);
/* Adds the blob to a snapshot's state from a bgsnap save_state hook:
 * 0, or -1 if it cannot. */
int wl_blob_add(bgsnap_state *st, const struct wl_params *p, const uint64_t *steps);
/* Returns 0 or -EBADMSG; steps must hold WL_MAX_THREADS entries. */
int wl_blob_decode(const void *buf, size_t len, struct wl_params *p, uint64_t *steps);

typedef struct wl_oracle wl_oracle;

int wl_oracle_create(wl_oracle **out, const struct wl_params *p);
void wl_oracle_destroy(wl_oracle *o);
/*
 * Replays each thread from its current count to steps[t] (O(steps) total).
 * Returns -EINVAL if some steps[t] is below what was already replayed.
 */
int wl_oracle_advance(wl_oracle *o, const uint64_t *steps);

struct wl_mismatch {
	uint64_t page;
	int64_t expected_step;   /* -1: initial content expected               */
	int64_t found_step;      /* decoded from the found first word, -1 if it
	                            does not look like a write                  */
	uint64_t found_word0;
	unsigned word;           /* first differing 8-byte word                */
};
/* Compares one page (4 KiB at data) with its expected content.  Returns
 * true if it matches; else fills *mm (if not NULL). */
bool wl_oracle_check_page(const wl_oracle *o, uint64_t page, const void *data,
                          struct wl_mismatch *mm);
/* As above for a page known to be all zero (a zero record). */
bool wl_oracle_check_zero(const wl_oracle *o, uint64_t page, struct wl_mismatch *mm);

#endif
