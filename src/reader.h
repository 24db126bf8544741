/*
 * reader.h - internal extras of the reader for the bgsnap tool (linked from
 * libbgsnap.a; not exported by the shared library): counts that only the
 * index knows, without a pass over the file.  Random-access readers only.
 */
#ifndef BGSNAP_READER_H
#define BGSNAP_READER_H

#include <stdint.h>

#include "bgsnap.h"

struct reader_index_stats {
	uint64_t records;          /* PAGES + ZERO + STATE records (= index entries) */
	uint64_t pages_records, zero_records, state_records;
	uint64_t index_offset;
};
/* -ESPIPE on a stream. */
int reader_index_stats(const bgsnap_reader *r, struct reader_index_stats *out);
/* Zero pages of region `idx`; -ENOENT out of range, -ESPIPE on a stream. */
int reader_region_zero_pages(const bgsnap_reader *r, unsigned idx, uint64_t *zero);

#endif
