/*
 * format.h - snapshot file format v1: constants shared by the encoder
 * (format_write.c) and the one parser (reader.c).  docs/FORMAT.md is the
 * normative description; this header must agree with it.
 *
 * File layout:   MAGIC(8) HEADER-record { PAGES | ZERO | STATE }* INDEX-record TRAILER-record
 * Record:        u32 type, u32 flags(=0), u64 payload_len, payload, u32 crc32c(type..payload)
 * All integers little-endian, read and written with le.h helpers only.
 */
#ifndef BGSNAP_FORMAT_H
#define BGSNAP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sink.h"

#define FMT_MAGIC          "\x89" "BGSNAP\n"   /* 8 bytes at offset 0 */
#define FMT_MAGIC_LEN      8
#define FMT_END_MAGIC      "BGSNEND\n"         /* last 8 bytes of the trailer payload */
#define FMT_VERSION        1u
#define FMT_PAGE_SIZE      4096u
#define FMT_NAME_MAX       63u

enum fmt_rec_type {
	FMT_REC_HEADER  = 1,
	FMT_REC_PAGES   = 2,
	FMT_REC_ZERO    = 3,
	FMT_REC_STATE   = 4,
	FMT_REC_INDEX   = 5,
	FMT_REC_TRAILER = 6,
	FMT_REC_CPAGES  = 7,   /* reserved: compressed pages (not in v1 writers) */
};

#define FMT_REC_HDR_LEN    16u   /* type, flags, payload_len */
#define FMT_REC_CRC_LEN    4u
#define FMT_MAX_RUN_PAGES  256u  /* a writer's largest PAGES/ZERO record */

/* One region as the writer describes it. */
struct fmt_region {
	const char *name;
	uint64_t addr;
	uint64_t size;      /* bytes, multiple of FMT_PAGE_SIZE */
};

/* What the trailer records about the run. */
struct fmt_meta {
	int method;
	uint64_t created_unix_ns;
	uint64_t pause_us;
};

struct fmt_index_entry;   /* private to format_write.c */

/*
 * The encoder.  Single-threaded.  Keeps the running whole-file crc32c and
 * the index as it goes (the checksum is updated in the write path, not in
 * a second pass).  Any sink error is sticky and is returned by every later
 * call.
 */
struct fmt_writer {
	struct sink *sink;
	struct bgsnap_err *err;
	uint32_t file_crc;
	uint32_t region_count;
	uint64_t *region_pages;         /* pages per region, for bounds checks */
	struct fmt_index_entry *index;
	size_t index_len, index_cap;
	uint64_t pages_written, pages_zero, state_count;
	uint64_t bytes_written;         /* == sink->offset */
};

/* Writes the magic and the header record (region table). */
int fmtw_begin(struct fmt_writer *w, struct sink *sink, const struct fmt_region *regions,
               uint32_t region_count, struct bgsnap_err *err);
/*
 * Writes pages [first, first+count) of `region` from `data` (count pages).
 * Splits the run into ZERO records (all-zero pages) and PAGES records of at
 * most FMT_MAX_RUN_PAGES.  `data` must not change during the call.
 */
int fmtw_pages(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count,
               const void *data);
/* Writes a STATE record. */
int fmtw_state(struct fmt_writer *w, const char *name, const void *data, size_t len);
/* Writes the INDEX and the TRAILER.  Does not commit the sink. */
int fmtw_finish(struct fmt_writer *w, const struct fmt_meta *meta);
/* Frees what the writer allocated (safe after any failure). */
void fmtw_free(struct fmt_writer *w);

#endif
