/*
 * reader_int.h - the reader's one struct and the functions its files share
 * (private to src/format/reader*.c).
 *
 * The reader is the one parser of snapshot files (format versions 1 to 4,
 * docs/FORMAT.md), behind every bgsnap_reader_* function; info, verify,
 * extract, diff and restore all read through it.  Two ways in:
 *  - random access (bgsnap_reader_open): header, trailer (last 84 bytes) and
 *    index are read and cross-checked at open.  The index then fixes the
 *    layout of the whole file: records are contiguous, so entry i spans
 *    exactly [offset_i, offset_i+1), and every region's runs tile its pages
 *    exactly once.  read_page/read_region go through per-region run tables
 *    sorted by first page; each record's header is checked against its entry
 *    and its crc against its bytes before its data is trusted.
 *  - sequential (bgsnap_reader_next, on a stream or a rewound file): one
 *    record at a time, crc, bounds, a coverage bitmap (exactly once), the
 *    running whole-file crc, then INDEX and TRAILER against what was seen.
 *    bgsnap_reader_verify is a sequential pass over a random-access reader.
 *
 * Trust: nothing read from the file is used before it is checked; every
 * length is bounded by a format limit and, for files, by the file size
 * before any allocation; a stream's buffers grow only as bytes arrive.
 * read_region writes only inside [dst, dst+dst_len) because runs were
 * checked against the region size at open and dst_len must equal it.
 *
 * The files:
 *   reader_record.c   byte sources and one record's framing, crc and
 *                     index-entry checks (both ways in, and restore)
 *   reader_parse.c    HEADER, TRAILER and STATE payloads
 *   reader_open.c     open (both ways), the trailer at the end of a file,
 *                     the states, close
 *   reader_index.c    the INDEX of a file: entries, run tables, tiling
 *   reader_meta.c     info, regions and states for callers
 *   reader_seq.c      the sequential pass: next, rewind, verify
 *   reader_cov.c      the sequential pass's page coverage bitmap
 *   reader_random.c   read_page (with its one-record cache), page_run,
 *                     read_region
 *   reader_cpages.c   a CPAGES record's frame decoded (codec.h), bounded
 *   reader_restore.c  restore's file-order access (reader.h)
 *   reader_chain.c    an incremental file's chain, and its image
 *
 * A chain: the newest file's reader owns its parents' readers (each opened
 * and checked on its own) and, per region, segments that tile the region
 * and name the link whose run holds those pages in the image; page reads
 * and restore go through the segments to each link's own records.
 */
#ifndef BGSNAP_READER_INT_H
#define BGSNAP_READER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bgsnap.h"
#include "format/format.h"
#include "util/err.h"

#define RD_HEAD_LEN      (FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN)   /* PAGES/ZERO up to the data */
#define RD_MIN_INDEX_REC (FMT_REC_HDR_LEN + 8 + FMT_REC_CRC_LEN)

typedef unsigned long long ull;   /* for %llu */

/* One PAGES, ZERO, CPAGES, STATE or PAD record, as the index (or the pass)
 * describes it (PAD: region 0, first 0, count = its zero bytes). */
struct run {
	uint32_t kind, region;
	uint64_t first, count, offset;
	uint64_t span;        /* random access: bytes of the whole record */
};

/* A chain's image of one region: pages [first, first+count) are those of
 * run `run` (of link `link`, 0 = the oldest file), the newest file's that
 * holds them.  A region's segments tile it, sorted by first page. */
struct seg {
	uint64_t first, count;
	const struct run *run;
	uint32_t link;
};

struct rregion {
	char name[FMT_NAME_MAX + 1];
	uint64_t addr, size, pages, base;   /* base: first page in global numbering */
	uint64_t zero_pages;                /* a file: from the index; a stream: as seen */
	struct run *runs;                   /* random access: sorted by first */
	size_t nruns;
	struct seg *segs;                   /* a chain's newest file: its image */
	size_t nsegs;
};

struct rstate {
	char name[FMT_NAME_MAX + 1];
	uint8_t *block;                     /* owns the record payload */
	const uint8_t *data;
	size_t len;
};

/* Where CPAGES records are decoded: a buffer of at most FMT_MAX_CPAGES
 * pages and the codec's state (reader_cpages.c). */
struct rd_dec {
	struct codec_dctx *dctx;
	uint8_t *buf;
	size_t cap;
};

/* Sequential pass state (reader_seq.c, reader_cov.c). */
struct rd_pass {
	int state;                          /* 0 records, 1 done, <0 sticky error */
	struct run *seen;                   /* records so far, for the INDEX check */
	size_t nseen, seen_cap;
	uint64_t **cov;                     /* coverage bitmap, in chunks */
	size_t ncov;
	uint64_t cov_count, zero;
	uint32_t states;
	struct rd_dec dec;                  /* CPAGES decoded for next()      */
};

/* read_page's cache: the last PAGES or CPAGES record it read, checked;
 * `pages` is its first page (in buf, or decoded in dec). */
struct rd_cache {
	uint8_t *buf;
	size_t cap;
	uint64_t off;
	int valid;
	const uint8_t *pages;
	struct rd_dec dec;
};

struct bgsnap_reader {
	int fd, owns_fd, stream;
	struct bgsnap_err err;
	uint64_t file_size;                 /* random: fstat; stream: at END */
	/* sequential byte source (the header at open, then the pass) */
	uint64_t pos;
	uint32_t file_crc;                  /* running whole-file crc up to pos */
	uint8_t *buf;                       /* payload of the last record read */
	size_t buf_cap;
	/* header */
	uint32_t version, page_size, region_count;
	int has_lineage, incremental;       /* version 3 (or 4 with the LINEAGE
	                                       feature); incremental: parent_id != 0 */
	int aligned;                        /* version 4: PAGES data page-aligned,
	                                       PAD records (and index entries) */
	uint8_t id[FMT_ID_LEN], parent_id[FMT_ID_LEN];
	uint32_t parent_file_crc, depth;
	struct rregion *regions;
	uint64_t pages_total;
	uint64_t header_end;
	uint32_t header_crc;                /* file crc of [0, header_end) */
	/* trailer */
	int have_trailer;
	uint64_t index_offset, pages_zero, created_ns, pause_us;
	uint64_t stored_bytes;              /* PAGES + CPAGES records: the index's,
	                                       a stream's as seen (reader_meta.c) */
	uint32_t state_count, method, file_crc_stored;
	/* random access: the index in file order; a stream: states as they come */
	struct run *index;
	size_t nindex;
	struct rstate *states;
	size_t nstates;
	struct rd_cache cache;
	struct rd_pass seq;
	char *path;                         /* as opened; NULL for a stream */
	/* A chain (reader_chain.c), in its newest file's reader only: the older
	 * files, oldest first, owned; run_base[k]: restore's number of link k's
	 * first index entry (nparents + 2 entries). */
	struct bgsnap_reader **parents;
	size_t nparents;
	size_t *run_base;
};

/* Fuzz builds (tests/fuzz/fuzz.mk) ignore checksum mismatches so that the
 * fuzzer's mutations reach the structural checks behind them: those, not
 * the checksums, are what keep a crafted file from causing harm. */
static inline int rd_crc_differs(uint32_t stored, uint32_t computed)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	(void)stored;
	(void)computed;
	return 0;
#else
	return stored != computed;
#endif
}

/* reader_record.c */
const char *rd_type_name(uint32_t type);
/* Records a corrupt-file error (-EBADMSG) unless one is recorded already;
 * returns the recorded code. */
int rd_bad(bgsnap_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Up to len bytes at r->pos (a file) or from the stream, advancing r->pos:
 * the count (short only at the end of input) or -errno. */
ssize_t rd_src_read(bgsnap_reader *r, void *buf, size_t len);
/* Exactly len bytes at `off` of a file; a short file is -EBADMSG. */
int rd_pread_exact(bgsnap_reader *r, void *buf, size_t len, uint64_t off, const char *what);
/* A record header's type, flags and payload length (not the crc). */
int rd_check_hdr(bgsnap_reader *r, const uint8_t *h, uint64_t off);
/* The crc of header `h` and `payload` against the stored `crcb`; the
 * record's crc into *rec_crc when not NULL. */
int rd_check_crc(bgsnap_reader *r, const uint8_t *h, const uint8_t *payload, uint64_t len,
                 const uint8_t *crcb, uint64_t off, uint32_t *rec_crc);
/* Sequential: the record at r->pos, checked, payload into r->buf, folded
 * into the running file crc (its value before the record in *crc_before).
 * 1, 0 at a clean end of input (no byte of a new record), or -errno. */
int rd_seq_record(bgsnap_reader *r, uint32_t *type, uint64_t *plen, uint64_t *off, uint32_t *crc_before);
/* rd_seq_record for a record that must be of type `want`: the end of input
 * is "truncated: file ends at offset N, <at_end>", another type is
 * "record at offset N: <TYPE><after>, expected <WANT>". */
int rd_seq_expect(bgsnap_reader *r, uint32_t want, const char *at_end, const char *after, uint64_t *plen,
                  uint64_t *off, uint32_t *crc_before);
/* Random access: the whole record [off, off+span) into *bufp (grown as
 * needed), its header checked against `want_type` and span, and its crc. */
int rd_load_record(bgsnap_reader *r, uint64_t off, uint64_t span, uint32_t want_type, uint8_t **bufp,
                   size_t *capp);
/* A PAGES/ZERO record's first RD_HEAD_LEN bytes `h` against its index
 * entry, and its crc (computed) against the stored one.  These write only
 * `err` (restore calls them from several threads on one reader). */
int rd_check_run_head(const struct run *x, const uint8_t *h, struct bgsnap_err *err);
int rd_check_run_crc(const struct run *x, uint32_t stored, uint32_t computed, struct bgsnap_err *err);

/* reader_cpages.c */
/* Decodes the frame (clen bytes; its record's crc and header checked) of
 * CPAGES record x into d (grown to x->count pages, at most
 * FMT_MAX_CPAGES); the pages into *pages.  -EBADMSG naming the record's
 * offset when the frame is bad or decodes to another length. */
int rd_decode(struct rd_dec *d, const struct run *x, const uint8_t *frame, uint64_t clen, const uint8_t **pages,
              struct bgsnap_err *err);
/* The same into `out` (x->count pages) instead of d's buffer. */
int rd_decode_into(struct rd_dec *d, const struct run *x, const uint8_t *frame, uint64_t clen, uint8_t *out,
                   struct bgsnap_err *err);
void rd_dec_free(struct rd_dec *d);

/* reader_parse.c */
/* Magic and HEADER through the sequential source (both ways in). */
int rd_read_head(bgsnap_reader *r);
/* A TRAILER payload (crc already checked) into the reader's fields. */
int rd_parse_trailer(bgsnap_reader *r, const uint8_t *p, uint64_t off);
/* A STATE payload into (name, data); `block` stays the caller's. */
int rd_parse_state(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t off, struct rstate *s);
/* Appends a state; names are unique and at most FMT_MAX_STATES. */
int rd_add_state(bgsnap_reader *r, const struct rstate *s, uint64_t off);

/* reader_index.c */
/* The INDEX of a file (trailer read): entries, run tables, tiling. */
int rd_load_index(bgsnap_reader *r);

/* reader_cov.c */
/* Marks pages [first, first+count) of region g as seen; a page seen twice
 * is -EBADMSG naming the record at `off`. */
int rd_cov_mark(bgsnap_reader *r, const struct rregion *g, uint64_t first, uint64_t count, uint64_t off);
/* The first page no record covered; 0 if every page was. */
int rd_cov_first_missing(const bgsnap_reader *r, uint32_t *region, uint64_t *page);
void rd_cov_free(bgsnap_reader *r);

/* reader_open.c */
/* Opens one file on its own (header, trailer, index, states); its message
 * names the path.  An incremental file's pages outside its records stay
 * unknown until reader_chain.c links it to its parents. */
int rd_open_one(bgsnap_reader **out, const char *path, struct bgsnap_err *err);

/* reader_chain.c */
/* Link k of r's chain (0 the oldest; r itself is the last). */
static inline bgsnap_reader *rd_link(const bgsnap_reader *r, size_t k)
{
	return k < r->nparents ? r->parents[k] : (bgsnap_reader *)r;
}
/* An incremental r: its parents found by id in its directory, checked,
 * and its image built.  0 at once for a file that is not incremental. */
int rd_chain_find(bgsnap_reader *r);
/* r (the newest) over explicit `older` links (oldest first, ownership
 * taken whatever the outcome): checked, and the image built. */
int rd_chain_adopt(bgsnap_reader *r, bgsnap_reader **older, size_t n);
/* The segment of a chain holding `page` of `region` (in range). */
const struct seg *rd_chain_seg(const bgsnap_reader *r, unsigned region, uint64_t page);
/* Link `l`'s error into r's, naming l's file. */
int rd_link_err(bgsnap_reader *r, const bgsnap_reader *l, int rc);
void rd_chain_free(bgsnap_reader *r);

/* reader_seq.c */
/* Forgets a pass (for rewind and close). */
void rd_seq_reset(bgsnap_reader *r);

#endif
