/*
 * format.h - snapshot file format (versions 1 to 4): constants shared by the encoder
 * (format_write.c) and the one parser (reader.c).  docs/FORMAT.md is the
 * normative description; this header must agree with it.
 *
 * File layout:   MAGIC(8) HEADER-record { PAGES | ZERO | CPAGES | STATE | PAD }* INDEX-record TRAILER-record
 * Record:        u32 type, u32 flags(=0), u64 payload_len, payload, u32 crc32c(type..payload)
 * All integers little-endian, read and written with le.h helpers only.
 */
#ifndef BGSNAP_FORMAT_H
#define BGSNAP_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/err.h"

#define FMT_MAGIC          "\x89" "BGSNAP\n"   /* 8 bytes at offset 0 */
#define FMT_MAGIC_LEN      8
#define FMT_END_MAGIC      "BGSNEND\n"         /* last 8 bytes of the trailer payload */
#define FMT_VERSION        1u                  /* no CPAGES records            */
#define FMT_VERSION_CPAGES 2u                  /* CPAGES records allowed       */
#define FMT_VERSION_LINEAGE 3u                 /* version 2 + a LINEAGE block  */
#define FMT_VERSION_ALIGNED 4u                 /* version 2 + `features`: page-aligned
                                                  PAGES data, PAD records, LINEAGE optional */
/* Version 4 HEADER `features` (the field reserved in versions 1 to 3). */
#define FMT_FEAT_ALIGNED   1u                  /* MUST be set in version 4 */
#define FMT_FEAT_LINEAGE   2u                  /* a LINEAGE block follows   */
#define FMT_PAGE_SIZE      4096u
#define FMT_NAME_MAX       63u

enum fmt_rec_type {
	FMT_REC_HEADER  = 1,
	FMT_REC_PAGES   = 2,
	FMT_REC_ZERO    = 3,
	FMT_REC_STATE   = 4,
	FMT_REC_INDEX   = 5,
	FMT_REC_TRAILER = 6,
	FMT_REC_CPAGES  = 7,   /* compressed pages: versions 2 to 4 */
	FMT_REC_PAD     = 8,   /* zero bytes that align the next PAGES data: version 4 only */
};

#define FMT_REC_HDR_LEN    16u   /* type, flags, payload_len */
#define FMT_REC_CRC_LEN    4u
#define FMT_MAX_RUN_PAGES  256u  /* a writer's largest PAGES record */
#define FMT_MAX_CPAGES     1024u /* pages per CPAGES record (4 MiB raw), all */
#define FMT_CODEC_ZSTD     1u    /* CPAGES `codec`: one zstd frame */

/* Limits (docs/FORMAT.md section "Limits"); a reader rejects anything above. */
#define FMT_MAX_REGIONS        4096u
#define FMT_MAX_TOTAL_PAGES    (UINT64_C(1) << 32)   /* all regions: 16 TiB   */
#define FMT_MAX_READ_RUN_PAGES 4096u                 /* PAGES record, readers */
#define FMT_MAX_ZERO_RUN       (UINT64_C(1) << 20)   /* ZERO record, all      */
#define FMT_MAX_STATES         4096u
#define FMT_MAX_STATE_LEN      (UINT64_C(1) << 30)

/* Version 4: bytes of a PAD record payload (all zero), at most. */
#define FMT_MAX_PAD            (FMT_PAGE_SIZE - 1)

/* Fixed payload sizes. */
#define FMT_HEADER_FIXED_LEN   16u   /* version, page_size, region_count, reserved */
#define FMT_LINEAGE_LEN        40u   /* version 3: id, parent_id, parent_file_crc, depth */
#define FMT_ID_LEN             16u
#define FMT_MAX_DEPTH          65535u
#define FMT_REGION_FIXED_LEN   24u   /* name_len + addr + size + flags, plus name */
#define FMT_RUN_PREFIX_LEN     24u   /* PAGES/ZERO: region, reserved, first, count */
#define FMT_INDEX_ENTRY_LEN    32u
#define FMT_TRAILER_LEN        64u
#define FMT_TRAILER_REC_LEN    (FMT_REC_HDR_LEN + FMT_TRAILER_LEN + FMT_REC_CRC_LEN)

/* 1 if `name` (`len` bytes, no terminator needed) is a valid region or state
 * name: 1..FMT_NAME_MAX bytes, each printable ASCII 0x20..0x7E. */
static inline int fmt_name_valid(const char *name, size_t len)
{
	if (len < 1 || len > FMT_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return 0;
	return 1;
}

/* Version 4: the PAD payload a writer puts before a PAGES record that would
 * start at `off`, so that its page data (FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN
 * bytes into it) starts at a multiple of FMT_PAGE_SIZE: -1 when none is
 * needed (the data is aligned already).  A PAD record takes 20 bytes of
 * its own, so a gap of 1..19 bytes becomes one of a page more. */
static inline int64_t fmt_pad_before_pages(uint64_t off)
{
	uint64_t gap = (FMT_PAGE_SIZE - (off + 40) % FMT_PAGE_SIZE) % FMT_PAGE_SIZE;
	if (!gap)
		return -1;
	if (gap < 20)
		gap += FMT_PAGE_SIZE;
	return (int64_t)(gap - 20);
}

/* 1 if a region at `addr` of `size` bytes lies inside the 64-bit address
 * space: its last byte, addr + size - 1, is at most 2^64 - 1.  A region
 * ending exactly at 2^64 is valid; one that would go beyond wraps. */
static inline int fmt_range_fits(uint64_t addr, uint64_t size)
{
	return size > 0 && size - 1 <= UINT64_MAX - addr;
}

/* 1 if two regions that fit (fmt_range_fits) share a byte.  Compares last
 * bytes, which never wrap, not ends, which are 0 for a region ending at
 * 2^64. */
static inline int fmt_ranges_overlap(uint64_t a, uint64_t asize, uint64_t b, uint64_t bsize)
{
	return a <= b + (bsize - 1) && b <= a + (asize - 1);
}

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

/*
 * Where the encoder's bytes go.  The engine passes its sink through these
 * calls, so the format depends on no I/O layer (and the parser on none at
 * all).  Both return 0 or a negative errno with the reason in `err`.
 */
struct fmt_out {
	void *ctx;
	/* Writes all of iov[0..iovcnt) (iovcnt <= iov_max) or fails.  The
	 * bytes may be reused as soon as it returns. */
	int (*writev)(void *ctx, const struct iovec *iov, int iovcnt, struct bgsnap_err *err);
	/* Writes out whatever writev kept back. */
	int (*flush)(void *ctx, struct bgsnap_err *err);
	int iov_max;   /* at least 3 */
	/* Optional (NULL: unknown): the bytes per second the destination
	 * currently takes, 0 while not known; an adaptive codec asks it. */
	uint64_t (*rate)(void *ctx);
};

/* How the encoder compresses page data (docs/FORMAT.md, CPAGES). */
enum fmt_compress { FMT_COMPRESS_NONE = 0, FMT_COMPRESS_ZSTD = 1 };
struct fmt_codec {
	int method;         /* enum fmt_compress */
	int level;          /* zstd level; 0 = the codec's default */
	unsigned threads;   /* compressor threads beside the writer (0: the
	                       writer compresses; a fork child must), max 64 */
	int aligned;        /* 1: a version 4 file whose PAGES data start at
	                       multiples of FMT_PAGE_SIZE (PAD records before
	                       them); CPAGES records stay unaligned */
	int adaptive;       /* 1: each chunk compressed only when the
	                       destination is slower than the compressors
	                       (format_adapt.h), else stored raw */
	uint64_t max_rate;  /* adaptive: the writer's rate limit in bytes/s
	                       (0: none), a bound on the destination's rate */
};

/*
 * Where a version 3 file stands in its chain (docs/FORMAT.md, LINEAGE).
 * parent_id all zero: a full snapshot, which starts a chain (then
 * parent_file_crc and depth are 0); otherwise an incremental one, whose
 * missing pages are its parent's.
 */
struct fmt_lineage {
	uint8_t id[FMT_ID_LEN];          /* random, not all zero */
	uint8_t parent_id[FMT_ID_LEN];   /* all zero: full */
	uint32_t parent_file_crc;        /* the parent's TRAILER file_crc */
	uint32_t depth;                  /* parent's depth + 1; 0 when full */
};

/* 1 if the 16 bytes of an id are all zero. */
static inline int fmt_id_zero(const uint8_t *id)
{
	uint8_t acc = 0;
	for (unsigned i = 0; i < FMT_ID_LEN; i++)
		acc |= id[i];
	return acc == 0;
}

struct fmt_index_entry;   /* private to format_write.c */
struct fmt_chunker;       /* private to format_chunk.c */
struct fmt_batch;         /* private to format_write.c */

/*
 * The encoder.  Single-threaded.  Keeps the running whole-file crc32c and
 * the index as it goes (the checksum is updated in the write path, not in
 * a second pass).  Any output error is sticky and is returned by every
 * later call.
 */
struct fmt_writer {
	struct fmt_out out;
	struct bgsnap_err *err;
	uint32_t file_crc;              /* after fmtw_finish: the TRAILER's file_crc */
	uint32_t region_count;
	uint64_t *region_pages;         /* pages per region, for bounds checks */
	struct fmt_index_entry *index;
	size_t index_len, index_cap;
	uint64_t pages_written, pages_zero, state_count;   /* pages_written: accepted, a
	                                  compressing writer may hold a chunk of them */
	uint64_t bytes_written;         /* bytes given to out so far */
	/* Compressing: chunks (runs of up to FMT_MAX_CPAGES non-zero pages,
	 * or one fault copy) stored as CPAGES records, and stored raw (by
	 * an adaptive codec's choice, or because they did not shrink). */
	uint64_t chunks_compressed, chunks_raw;
	/* Private to format_write.c: */
	int failed;                     /* sticky negative errno */
	uint64_t pages_total;
	uint64_t *region_base;          /* first bit of each region in `seen` */
	uint64_t *seen;                 /* one bit per page: written already */
	struct fmt_batch *batch;        /* records queued for one writev */
	char (*state_names)[FMT_NAME_MAX + 1];   /* for the uniqueness check */
	size_t state_cap;
	struct fmt_chunker *cz;         /* compressing: the pending chunk */
	int has_lineage;                /* version 3 header */
	int incremental;                /* pages may be left out (the parent's) */
	int aligned;                    /* version 4: PAD before PAGES records */
};

/* Writes the magic and the header record (region table) to `out` (copied).
 * Checks the table against the format's rules (names, alignment, no
 * overlap, limits). */
int fmtw_begin(struct fmt_writer *w, const struct fmt_out *out, const struct fmt_region *regions,
               uint32_t region_count, struct bgsnap_err *err);
/* fmtw_begin with page data compressed as `codec` says (NULL or
 * FMT_COMPRESS_NONE: exactly fmtw_begin, a version 1 file).  Compressing
 * writes a version 2 header; non-zero pages are gathered into chunks of up
 * to FMT_MAX_CPAGES consecutive pages of one region, each stored as one
 * CPAGES record, or as PAGES records when it does not compress below 97 %.
 * Everything the compressor needs is allocated here, so that a fork child
 * can write without allocating, and codec->threads compressor threads are
 * started here (fmtw_free joins them): they compress chunks while the
 * caller goes on, and records still come out in the order the chunks
 * were gathered.  -ENOTSUP (with a message) when the
 * library was built without the codec, -EINVAL for an unknown one. */
int fmtw_begin_codec(struct fmt_writer *w, const struct fmt_out *out, const struct fmt_region *regions,
                     uint32_t region_count, const struct fmt_codec *codec, struct bgsnap_err *err);
/*
 * fmtw_begin_codec with a lineage (NULL: exactly fmtw_begin_codec).
 * Non-NULL writes a version 3 header (CPAGES allowed whatever the codec);
 * when parent_id is not zero the file is incremental and fmtw_finish
 * accepts pages never written (they are the parent's).  -EINVAL when the
 * lineage breaks the format's rules: id all zero, depth above
 * FMT_MAX_DEPTH, a full lineage with a parent crc or depth, an incremental
 * one with depth 0.
 */
int fmtw_begin_lineage(struct fmt_writer *w, const struct fmt_out *out, const struct fmt_region *regions,
                       uint32_t region_count, const struct fmt_codec *codec, const struct fmt_lineage *lin,
                       struct bgsnap_err *err);
/*
 * Writes pages [first, first+count) of `region` from `data` (count pages).
 * Splits the run into ZERO records (all-zero pages) and PAGES records of at
 * most FMT_MAX_RUN_PAGES.  `data` must not change during the call; it is
 * passed to the output without a copy.  A page written twice is refused
 * (-EINVAL): every page goes to the file exactly once.
 */
int fmtw_pages(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count,
               const void *data);
/* One page somewhere in memory, for fmtw_page_list. */
struct fmt_page_ref {
	uint32_t region;
	uint64_t page;
	const void *data;   /* FMT_PAGE_SIZE bytes */
};
/* Writes scattered single pages (the fault copies) as one-page PAGES or
 * ZERO records, batched into as few writev calls as the output allows. */
int fmtw_page_list(struct fmt_writer *w, const struct fmt_page_ref *refs, size_t n);
/* Writes a STATE record. */
int fmtw_state(struct fmt_writer *w, const char *name, const void *data, size_t len);
/* Reserves room for `records` index entries and `states` state names, so
 * that the writer allocates nothing afterwards (a fork child must not:
 * another thread may have held the allocator's lock at fork time). */
int fmtw_reserve(struct fmt_writer *w, size_t records, size_t states);
/* Writes the INDEX and the TRAILER and flushes the output; committing the
 * file (fsync, naming) is the caller's.  Fails (-EINVAL) if some page was
 * never written, unless the file is incremental: a file the reader would
 * reject is never finished.  Afterwards w->file_crc is the TRAILER's
 * file_crc (what a child's parent_file_crc names). */
int fmtw_finish(struct fmt_writer *w, const struct fmt_meta *meta);
/* Frees what the writer allocated (safe after any failure). */
void fmtw_free(struct fmt_writer *w);

#endif
