/*
 * reader.c - the one parser of snapshot files (format v1, docs/FORMAT.md),
 * behind every bgsnap_reader_* function; info, verify, extract, diff and
 * restore all read through it.
 *
 * Two ways in:
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
 */
#include "bgsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "format/crc32c.h"
#include "util/err.h"
#include "format/format.h"
#include "format/le.h"
#include "format/reader.h"

#define COV_CHUNK_PAGES 32768u            /* one 4 KiB bitmap chunk */
#define HEAD_LEN        (FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN)
#define MAX_HEADER_LEN  (FMT_HEADER_FIXED_LEN + FMT_MAX_REGIONS * (FMT_REGION_FIXED_LEN + FMT_NAME_MAX))
#define MIN_INDEX_REC   (FMT_REC_HDR_LEN + 8 + FMT_REC_CRC_LEN)

/* A chunk whose every page has been seen: shared, never allocated, never
 * written.  Whole-chunk runs (long ZERO records of big sparse regions) then
 * cost no memory, so a crafted stream cannot make the bitmap grow faster
 * than one chunk per record it sends. */
static uint64_t cov_full_marker;
#define COV_FULL (&cov_full_marker)

struct run {
	uint32_t kind, region;
	uint64_t first, count, offset;
	uint64_t span;        /* random access: bytes of the whole record */
};

struct rregion {
	char name[FMT_NAME_MAX + 1];
	uint64_t addr, size, pages, base;   /* base: first page in global numbering */
	uint64_t zero_pages;
	struct run *runs;                   /* random access: sorted by first */
	size_t nruns;
};

struct rstate {
	char name[FMT_NAME_MAX + 1];
	uint8_t *block;                     /* owns the record payload */
	const uint8_t *data;
	size_t len;
};

struct bgsnap_reader {
	int fd, owns_fd, stream;
	struct bgsnap_err err;
	uint64_t file_size;                 /* random: fstat; stream: at END */
	uint32_t version, page_size, region_count;
	struct rregion *regions;
	uint64_t pages_total;
	uint64_t header_end;
	uint32_t header_crc;                /* file crc of [0, header_end) */
	/* trailer */
	int have_trailer;
	uint64_t index_offset, pages_zero, created_ns, pause_us;
	uint32_t state_count, method, file_crc_stored;
	/* random access */
	struct run *index;
	size_t nindex;
	struct rstate *states;
	size_t nstates;
	uint8_t *cache;                     /* last PAGES record read by read_page */
	size_t cache_cap;
	uint64_t cache_off;
	int cache_valid;
	/* sequential pass */
	uint64_t pos;
	uint32_t file_crc;
	int seq_state;                      /* 0 records, 1 done, <0 sticky error */
	struct run *seen;
	size_t nseen, seen_cap;
	uint64_t **cov;
	size_t ncov;
	uint64_t cov_count, seq_zero;
	uint32_t seq_states;
	uint8_t *buf;
	size_t buf_cap;
};

static const char *type_name(uint32_t t)
{
	static const char *names[] = { "?", "HEADER", "PAGES", "ZERO", "STATE", "INDEX", "TRAILER", "CPAGES" };
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

static int bad(bgsnap_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(bgsnap_reader *r, const char *fmt, ...)
{
	if (r->err.code)
		return r->err.code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err.msg, sizeof(r->err.msg), fmt, ap);
	va_end(ap);
	r->err.code = -EBADMSG;
	return -EBADMSG;
}

typedef unsigned long long ull;

/* Fuzz builds (tests/fuzz/fuzz.mk) ignore checksum mismatches so that the
 * fuzzer's mutations reach the structural checks behind them: those, not
 * the checksums, are what keep a crafted file from causing harm. */
static inline int crc_differs(uint32_t stored, uint32_t computed)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	(void)stored;
	(void)computed;
	return 0;
#else
	return stored != computed;
#endif
}

/* ------------------------------------------------------------------------ */
/* Byte sources.                                                            */

/* Reads up to len bytes at r->pos (random) or from the stream, advancing
 * r->pos; returns the count (short only at end of file) or -errno. */
static ssize_t src_read(bgsnap_reader *r, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = r->stream ? read(r->fd, (char *)buf + got, len - got)
		                      : pread(r->fd, (char *)buf + got, len - got, (off_t)(r->pos + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			return err_sys(&r->err, e, "read at offset %llu", (ull)(r->pos + got));
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	r->pos += got;
	return (ssize_t)got;
}

/* Reads exactly len bytes at `off` of a random-access file. */
static int pread_exact(bgsnap_reader *r, void *buf, size_t len, uint64_t off, const char *what)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(r->fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(&r->err, -errno, "reading %s at offset %llu", what, (ull)(off + got));
		}
		if (n == 0)
			return bad(r, "truncated: file ends at offset %llu inside %s at offset %llu",
			           (ull)(off + got), what, (ull)off);
		got += (size_t)n;
	}
	return 0;
}

static int buf_reserve(bgsnap_reader *r, size_t len)
{
	if (len <= r->buf_cap)
		return 0;
	uint8_t *n = realloc(r->buf, len);
	if (!n)
		return err_set(&r->err, -ENOMEM, "out of memory (%zu bytes for a record)", len);
	r->buf = n;
	r->buf_cap = len;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Record framing.                                                           */

/* Largest payload a record of `type` may have, and whether `len` is valid. */
static int payload_len_ok(uint32_t type, uint64_t len, uint32_t ps)
{
	switch (type) {
	case FMT_REC_HEADER:
		return len >= FMT_HEADER_FIXED_LEN && len <= MAX_HEADER_LEN;
	case FMT_REC_PAGES:
		return len > FMT_RUN_PREFIX_LEN && (len - FMT_RUN_PREFIX_LEN) % ps == 0 &&
		       (len - FMT_RUN_PREFIX_LEN) / ps <= FMT_MAX_READ_RUN_PAGES;
	case FMT_REC_ZERO:
		return len == FMT_RUN_PREFIX_LEN;
	case FMT_REC_STATE:
		return len >= 4 + 1 + 8 && len <= 4 + FMT_NAME_MAX + 8 + FMT_MAX_STATE_LEN;
	case FMT_REC_INDEX:
		return len >= 8 && (len - 8) % FMT_INDEX_ENTRY_LEN == 0;
	case FMT_REC_TRAILER:
		return len == FMT_TRAILER_LEN;
	}
	return 0;
}

/* Checks a record header's type, flags and payload length (not the crc). */
static int check_rec_hdr(bgsnap_reader *r, const uint8_t *h, uint64_t off)
{
	uint32_t type = le32_load(h), flags = le32_load(h + 4);
	uint64_t len = le64_load(h + 8);
	if (type == FMT_REC_CPAGES)
		return bad(r, "record at offset %llu: CPAGES (type 7, compressed pages) is an unsupported "
		           "encoding in format v1", (ull)off);
	if (type < FMT_REC_HEADER || type > FMT_REC_TRAILER)
		return bad(r, "record at offset %llu: unknown record type %u", (ull)off, type);
	if (flags)
		return bad(r, "record at offset %llu (%s): flags 0x%x, must be 0", (ull)off, type_name(type),
		           flags);
	if (!payload_len_ok(type, len, r->page_size ? r->page_size : FMT_PAGE_SIZE))
		return bad(r, "record at offset %llu (%s): invalid payload length %llu", (ull)off,
		           type_name(type), (ull)len);
	return 0;
}

static int check_crc(bgsnap_reader *r, const uint8_t *h, const uint8_t *payload, uint64_t len,
                     const uint8_t *crcb, uint64_t off, uint32_t *rec_crc)
{
	uint32_t c = crc32c(crc32c(0, h, FMT_REC_HDR_LEN), payload, len);
	uint32_t stored = le32_load(crcb);
	if (crc_differs(stored, c))
		return bad(r, "record at offset %llu (%s): checksum mismatch (stored 0x%08x, computed 0x%08x)",
		           (ull)off, type_name(le32_load(h)), stored, c);
	if (rec_crc)
		*rec_crc = c;
	return 0;
}

/*
 * Sequential: reads the record at r->pos into r->buf (payload) after checking
 * its header, bounds and crc; folds it into the running file crc.  Returns 1,
 * 0 at a clean end of input (no byte of a new record), or a negative errno.
 */
static int seq_record(bgsnap_reader *r, uint32_t *type, uint64_t *plen, uint64_t *off,
                      uint32_t *crc_before)
{
	uint8_t h[FMT_REC_HDR_LEN], crcb[4];
	*off = r->pos;
	*crc_before = r->file_crc;
	ssize_t n = src_read(r, h, sizeof(h));
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(h))
		return bad(r, "truncated: file ends at offset %llu inside the header of a record starting at "
		           "offset %llu", (ull)r->pos, (ull)*off);
	int rc = check_rec_hdr(r, h, *off);
	if (rc < 0)
		return rc;
	*type = le32_load(h);
	uint64_t len = *plen = le64_load(h + 8);
	if (!r->stream && len + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN > r->file_size - *off)
		return bad(r, "truncated: file ends at offset %llu inside %s record starting at offset %llu "
		           "(%llu bytes long)", (ull)r->file_size, type_name(*type), (ull)*off,
		           (ull)(len + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN));
	/* A stream's buffer grows only as bytes arrive: a lying length costs at
	 * most twice what was really sent. */
	size_t got = 0;
	while (got < len) {
		size_t want = r->stream ? (size_t)(r->buf_cap > got ? r->buf_cap : 2 * got + 65536) : len;
		if (want > len)
			want = len;
		if ((rc = buf_reserve(r, want)) < 0)
			return rc;
		n = src_read(r, r->buf + got, want - got);
		if (n < 0)
			return (int)n;
		got += (size_t)n;
		if (got < want)
			return bad(r, "truncated: file ends at offset %llu inside %s record starting at offset "
			           "%llu (%llu bytes long)", (ull)r->pos, type_name(*type), (ull)*off,
			           (ull)(len + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN));
	}
	if ((rc = buf_reserve(r, 1)) < 0)
		return rc;
	n = src_read(r, crcb, 4);
	if (n < 0)
		return (int)n;
	if (n < 4)
		return bad(r, "truncated: file ends at offset %llu inside %s record starting at offset %llu",
		           (ull)r->pos, type_name(*type), (ull)*off);
	uint32_t c;
	if ((rc = check_crc(r, h, r->buf, len, crcb, *off, &c)) < 0)
		return rc;
	r->file_crc = crc32c(crc32c_combine(r->file_crc, c, FMT_REC_HDR_LEN + len), crcb, 4);
	return 1;
}

/* Random access: reads the whole record [off, off+span) into *bufp (grown as
 * needed) and checks its header (type, flags, length == span) and crc. */
static int load_record(bgsnap_reader *r, uint64_t off, uint64_t span, uint32_t want_type,
                       uint8_t **bufp, size_t *capp)
{
	if (span > *capp) {
		uint8_t *n = realloc(*bufp, span);
		if (!n)
			return err_set(&r->err, -ENOMEM, "out of memory (%llu bytes for a record)", (ull)span);
		*bufp = n;
		*capp = span;
	}
	uint8_t *b = *bufp;
	int rc = pread_exact(r, b, span, off, "a record");
	if (rc < 0)
		return rc;
	if ((rc = check_rec_hdr(r, b, off)) < 0)
		return rc;
	if (le32_load(b) != want_type)
		return bad(r, "record at offset %llu: type %s, the index says %s", (ull)off,
		           type_name(le32_load(b)), type_name(want_type));
	uint64_t len = le64_load(b + 8);
	if (len != span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN)
		return bad(r, "record at offset %llu (%s): payload length %llu, the index implies %llu", (ull)off,
		           type_name(want_type), (ull)len, (ull)(span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN));
	return check_crc(r, b, b + FMT_REC_HDR_LEN, len, b + span - 4, off, NULL);
}

/* ------------------------------------------------------------------------ */
/* Header and trailer.                                                       */

static int parse_header(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t off)
{
	uint32_t version = le32_load(p), ps = le32_load(p + 4), n = le32_load(p + 8);
	if (version != FMT_VERSION)
		return bad(r, "HEADER at offset %llu: unsupported format version %u (this reader knows %u)",
		           (ull)off, version, FMT_VERSION);
	if (ps != FMT_PAGE_SIZE)
		return bad(r, "HEADER at offset %llu: page size %u (v1 requires %u)", (ull)off, ps, FMT_PAGE_SIZE);
	if (n < 1 || n > FMT_MAX_REGIONS)
		return bad(r, "HEADER at offset %llu: %u regions (1..%u allowed)", (ull)off, n, FMT_MAX_REGIONS);
	if (le32_load(p + 12))
		return bad(r, "HEADER at offset %llu: reserved field is 0x%x, must be 0", (ull)off, le32_load(p + 12));
	r->version = version;
	r->page_size = ps;
	if (!(r->regions = calloc(n, sizeof(*r->regions))))
		return err_set(&r->err, -ENOMEM, "out of memory");
	r->region_count = n;
	uint64_t q = FMT_HEADER_FIXED_LEN, total = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct rregion *g = &r->regions[i];
		uint64_t at = off + FMT_REC_HDR_LEN + q;
		if (len - q < 4)
			return bad(r, "HEADER at offset %llu: region %u runs past the end of the header", (ull)off, i);
		uint32_t nl = le32_load(p + q);
		if (nl < 1 || nl > FMT_NAME_MAX || len - q - 4 < (uint64_t)nl + 20)
			return bad(r, "HEADER: region %u at offset %llu: name length %u invalid or past the header",
			           i, (ull)at, nl);
		if (!fmt_name_valid((const char *)p + q + 4, nl))
			return bad(r, "HEADER: region %u at offset %llu: name is not printable ASCII", i, (ull)at);
		memcpy(g->name, p + q + 4, nl);
		q += 4 + nl;
		g->addr = le64_load(p + q);
		g->size = le64_load(p + q + 8);
		uint32_t fl = le32_load(p + q + 16);
		q += 20;
		if (g->addr % ps || g->size % ps || !g->size || g->addr + g->size < g->addr)
			return bad(r, "HEADER: region '%s' at offset %llu: address 0x%llx size %llu not page aligned, "
			           "empty or wrapping", g->name, (ull)at, (ull)g->addr, (ull)g->size);
		if (fl)
			return bad(r, "HEADER: region '%s' at offset %llu: flags 0x%x, must be 0", g->name, (ull)at, fl);
		g->pages = g->size / ps;
		g->base = total;
		total += g->pages;
		if (total > FMT_MAX_TOTAL_PAGES)
			return bad(r, "HEADER at offset %llu: more than %llu pages in all regions", (ull)off,
			           (ull)FMT_MAX_TOTAL_PAGES);
		for (uint32_t j = 0; j < i; j++) {
			const struct rregion *o = &r->regions[j];
			if (!strcmp(o->name, g->name))
				return bad(r, "HEADER at offset %llu: two regions named '%s'", (ull)off, g->name);
			if (g->addr < o->addr + o->size && o->addr < g->addr + g->size)
				return bad(r, "HEADER at offset %llu: regions '%s' and '%s' overlap", (ull)off, o->name,
				           g->name);
		}
	}
	if (q != len)
		return bad(r, "HEADER at offset %llu: %llu bytes after the region table", (ull)off, (ull)(len - q));
	r->pages_total = total;
	return 0;
}

/* Magic and HEADER, through the sequential source (works for both modes). */
static int read_head(bgsnap_reader *r)
{
	uint8_t m[FMT_MAGIC_LEN];
	ssize_t n = src_read(r, m, sizeof(m));
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(m) || memcmp(m, FMT_MAGIC, FMT_MAGIC_LEN))
		return bad(r, "not a bgsnap snapshot: bad magic at offset 0");
	r->file_crc = crc32c(0, m, sizeof(m));
	uint32_t type, before;
	uint64_t len, off;
	int rc = seq_record(r, &type, &len, &off, &before);
	if (rc == 0)
		return bad(r, "truncated: file ends at offset %llu, before the HEADER record", (ull)r->pos);
	if (rc < 0)
		return rc;
	if (type != FMT_REC_HEADER)
		return bad(r, "record at offset %llu: %s, expected HEADER", (ull)off, type_name(type));
	if ((rc = parse_header(r, r->buf, len, off)) < 0)
		return rc;
	r->header_end = r->pos;
	r->header_crc = r->file_crc;
	return 0;
}

/* Checks a TRAILER payload (crc already checked) and stores its fields. */
static int parse_trailer(bgsnap_reader *r, const uint8_t *p, uint64_t off)
{
	if (memcmp(p + 56, FMT_END_MAGIC, 8))
		return bad(r, "TRAILER at offset %llu: bad end magic", (ull)off);
	if (le32_load(p + 52))
		return bad(r, "TRAILER at offset %llu: reserved field is 0x%x, must be 0", (ull)off,
		           le32_load(p + 52));
	r->index_offset = le64_load(p);
	uint64_t total = le64_load(p + 8);
	r->pages_zero = le64_load(p + 16);
	r->state_count = le32_load(p + 24);
	r->method = le32_load(p + 28);
	r->created_ns = le64_load(p + 32);
	r->pause_us = le64_load(p + 40);
	r->file_crc_stored = le32_load(p + 48);
	if (total != r->pages_total)
		return bad(r, "TRAILER at offset %llu: %llu pages, the header's regions hold %llu", (ull)off,
		           (ull)total, (ull)r->pages_total);
	if (r->pages_zero > total)
		return bad(r, "TRAILER at offset %llu: %llu zero pages of %llu", (ull)off, (ull)r->pages_zero,
		           (ull)total);
	if (r->state_count > FMT_MAX_STATES)
		return bad(r, "TRAILER at offset %llu: %u state blobs (max %u)", (ull)off, r->state_count,
		           FMT_MAX_STATES);
	return 0;
}

/* The trailer at the end of a file is not valid: walk the record headers
 * from the start to say precisely why (truncation, trailing data, or the
 * trailer itself).  `why` is the trailer's own problem. */
static int diagnose_end(bgsnap_reader *r, const char *why)
{
	char saved[sizeof(r->err.msg)];
	snprintf(saved, sizeof(saved), "%s", why);
	uint64_t off = r->header_end, sz = r->file_size;
	for (;;) {
		uint8_t h[FMT_REC_HDR_LEN];
		if (off == sz)
			return bad(r, "truncated: file ends at offset %llu after a complete record; the %s missing",
			           (ull)sz, "INDEX and TRAILER are");
		if (sz - off < FMT_REC_HDR_LEN)
			return bad(r, "truncated: file ends at offset %llu inside the header of a record starting "
			           "at offset %llu", (ull)sz, (ull)off);
		int rc = pread_exact(r, h, sizeof(h), off, "a record header");
		if (rc < 0)
			return rc;
		if ((rc = check_rec_hdr(r, h, off)) < 0)
			return rc;
		uint32_t type = le32_load(h);
		uint64_t span = le64_load(h + 8) + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN;
		if (span > sz - off)
			return bad(r, "truncated: file ends at offset %llu inside %s record starting at offset %llu "
			           "(%llu bytes long)", (ull)sz, type_name(type), (ull)off, (ull)span);
		if (type == FMT_REC_TRAILER && off + span < sz)
			return bad(r, "%llu bytes of trailing data after the TRAILER record at offset %llu",
			           (ull)(sz - off - span), (ull)off);
		if (off + span == sz && type == FMT_REC_TRAILER)
			return bad(r, "%s", saved);
		if (off + span == sz)
			return bad(r, "truncated: file ends at offset %llu after the %s record at offset %llu; the "
			           "INDEX and TRAILER are missing", (ull)sz, type_name(type), (ull)off);
		off += span;
	}
}

/* ------------------------------------------------------------------------ */
/* Random-access open: trailer, index, run tables, states.                  */

static int cmp_run(const void *a, const void *b)
{
	const struct run *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

static uint64_t min_span(uint32_t kind)
{
	return kind == FMT_REC_STATE ? FMT_REC_HDR_LEN + 4 + 1 + 8 + FMT_REC_CRC_LEN : HEAD_LEN + FMT_REC_CRC_LEN;
}

static int load_index(bgsnap_reader *r)
{
	uint64_t toff = r->file_size - FMT_TRAILER_REC_LEN;
	uint64_t io = r->index_offset;
	if (io < r->header_end || io > toff || toff - io < MIN_INDEX_REC)
		return bad(r, "TRAILER at offset %llu: index offset %llu is not between the header (ends at %llu) "
		           "and the trailer", (ull)toff, (ull)io, (ull)r->header_end);
	uint8_t *ib = NULL;
	size_t icap = 0;
	int rc = load_record(r, io, toff - io, FMT_REC_INDEX, &ib, &icap);
	if (rc < 0) {
		free(ib);
		return rc;
	}
	uint64_t plen = toff - io - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN;
	uint64_t n = le64_load(ib + FMT_REC_HDR_LEN);
	if (n != (plen - 8) / FMT_INDEX_ENTRY_LEN) {
		free(ib);
		return bad(r, "INDEX at offset %llu: entry count %llu, its length holds %llu", (ull)io, (ull)n,
		           (ull)((plen - 8) / FMT_INDEX_ENTRY_LEN));
	}
	r->index = calloc(n ? n : 1, sizeof(*r->index));
	if (!r->index) {
		free(ib);
		return err_set(&r->err, -ENOMEM, "out of memory for the index (%llu entries)", (ull)n);
	}
	r->nindex = n;
	const uint8_t *e = ib + FMT_REC_HDR_LEN + 8;
	uint64_t zero = 0, expect_off = r->header_end;
	uint32_t states = 0;
	for (uint64_t i = 0; i < n; i++, e += FMT_INDEX_ENTRY_LEN) {
		struct run *x = &r->index[i];
		x->kind = le32_load(e);
		x->region = le32_load(e + 4);
		x->first = le64_load(e + 8);
		x->count = le64_load(e + 16);
		x->offset = le64_load(e + 24);
		uint64_t next = i + 1 < n ? le64_load(e + FMT_INDEX_ENTRY_LEN + 24) : io;
		rc = -EBADMSG;
		if (x->kind == FMT_REC_CPAGES) {
			bad(r, "INDEX entry %llu: record at offset %llu is CPAGES (type 7, compressed pages), an "
			    "unsupported encoding in format v1", (ull)i, (ull)x->offset);
			break;
		}
		if (x->kind != FMT_REC_PAGES && x->kind != FMT_REC_ZERO && x->kind != FMT_REC_STATE) {
			bad(r, "INDEX entry %llu: kind %u is not PAGES, ZERO or STATE", (ull)i, x->kind);
			break;
		}
		if (x->offset != expect_off || next < x->offset || next - x->offset < min_span(x->kind)) {
			bad(r, "INDEX entry %llu: record offset %llu, expected %llu (records are contiguous, next at "
			    "%llu)", (ull)i, (ull)x->offset, (ull)expect_off, (ull)next);
			break;
		}
		x->span = next - x->offset;
		expect_off = next;
		if (x->kind == FMT_REC_STATE) {
			if (x->region || x->first || x->count > FMT_MAX_STATE_LEN ||
			    x->span - min_span(FMT_REC_STATE) < x->count ||
			    x->span - min_span(FMT_REC_STATE) - x->count > FMT_NAME_MAX - 1) {
				bad(r, "INDEX entry %llu: STATE at offset %llu: fields inconsistent with its %llu-byte record",
				    (ull)i, (ull)x->offset, (ull)x->span);
				break;
			}
			if (++states > FMT_MAX_STATES) {
				bad(r, "INDEX: more than %u STATE records", FMT_MAX_STATES);
				break;
			}
			rc = 0;
			continue;
		}
		if (x->region >= r->region_count) {
			bad(r, "INDEX entry %llu: region %u does not exist (%u regions)", (ull)i, x->region,
			    r->region_count);
			break;
		}
		struct rregion *g = &r->regions[x->region];
		uint64_t maxc = x->kind == FMT_REC_PAGES ? FMT_MAX_READ_RUN_PAGES : FMT_MAX_ZERO_RUN;
		if (x->count < 1 || x->count > maxc || x->first > g->pages || x->count > g->pages - x->first) {
			bad(r, "INDEX entry %llu: %s pages %llu+%llu outside region '%s' (%llu pages) or too many",
			    (ull)i, type_name(x->kind), (ull)x->first, (ull)x->count, g->name, (ull)g->pages);
			break;
		}
		uint64_t want = x->kind == FMT_REC_PAGES ? HEAD_LEN + x->count * r->page_size + FMT_REC_CRC_LEN
		                                         : HEAD_LEN + FMT_REC_CRC_LEN;
		if (x->span != want) {
			bad(r, "INDEX entry %llu: %s record at offset %llu spans %llu bytes, %llu expected", (ull)i,
			    type_name(x->kind), (ull)x->offset, (ull)x->span, (ull)want);
			break;
		}
		if (x->kind == FMT_REC_ZERO) {
			zero += x->count;
			g->zero_pages += x->count;
		}
		g->nruns++;
		rc = 0;
	}
	free(ib);
	if (n == 0 && expect_off != io)
		return bad(r, "INDEX at offset %llu: no entries, but records lie between %llu and %llu", (ull)io,
		           (ull)r->header_end, (ull)io);
	if (rc < 0)
		return rc;

	for (uint32_t g = 0; g < r->region_count; g++) {
		r->regions[g].runs = calloc(r->regions[g].nruns + 1, sizeof(struct run));
		if (!r->regions[g].runs)
			return err_set(&r->err, -ENOMEM, "out of memory");
		r->regions[g].nruns = 0;
	}
	for (size_t i = 0; i < r->nindex; i++)
		if (r->index[i].kind != FMT_REC_STATE) {
			struct rregion *g = &r->regions[r->index[i].region];
			g->runs[g->nruns++] = r->index[i];
		}
	for (uint32_t gi = 0; gi < r->region_count; gi++) {
		struct rregion *g = &r->regions[gi];
		qsort(g->runs, g->nruns, sizeof(struct run), cmp_run);
		uint64_t next = 0;
		for (size_t k = 0; k < g->nruns; k++) {
			const struct run *x = &g->runs[k];
			if (x->first < next)
				return bad(r, "INDEX: page %llu of region '%s' is in two records (offsets %llu and %llu)",
				           (ull)x->first, g->name, (ull)g->runs[k - 1].offset, (ull)x->offset);
			if (x->first > next)
				return bad(r, "INDEX: pages %llu..%llu of region '%s' are in no record", (ull)next,
				           (ull)(x->first - 1), g->name);
			next = x->first + x->count;
		}
		if (next != g->pages)
			return bad(r, "INDEX: pages %llu..%llu of region '%s' are in no record", (ull)next,
			           (ull)(g->pages - 1), g->name);
	}
	/* After the coverage check: a duplicate or missing page is the clearer
	 * diagnosis when the counts disagree too. */
	if (zero != r->pages_zero)
		return bad(r, "TRAILER: %llu zero pages, the index has %llu", (ull)r->pages_zero, (ull)zero);
	if (states != r->state_count)
		return bad(r, "TRAILER: %u state blobs, the index has %u", r->state_count, states);
	return 0;
}

/* Parses a STATE payload into (name, data); `block` stays owned by the caller. */
static int parse_state(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t off, struct rstate *s)
{
	uint32_t nl = le32_load(p);
	if (nl < 1 || nl > FMT_NAME_MAX || len < 4 + (uint64_t)nl + 8)
		return bad(r, "STATE record at offset %llu: name length %u invalid", (ull)off, nl);
	if (!fmt_name_valid((const char *)p + 4, nl))
		return bad(r, "STATE record at offset %llu: name is not printable ASCII", (ull)off);
	uint64_t dl = le64_load(p + 4 + nl);
	if (dl != len - 4 - nl - 8)
		return bad(r, "STATE record at offset %llu: data length %llu, the record holds %llu", (ull)off,
		           (ull)dl, (ull)(len - 4 - nl - 8));
	memset(s->name, 0, sizeof(s->name));
	memcpy(s->name, p + 4, nl);
	s->data = p + 4 + nl + 8;
	s->len = (size_t)dl;
	return 0;
}

static int add_state(bgsnap_reader *r, const struct rstate *s, uint64_t off)
{
	for (size_t i = 0; i < r->nstates; i++)
		if (!strcmp(r->states[i].name, s->name))
			return bad(r, "STATE record at offset %llu: a second state named '%s'", (ull)off, s->name);
	if (r->nstates >= FMT_MAX_STATES)
		return bad(r, "STATE record at offset %llu: more than %u state blobs", (ull)off, FMT_MAX_STATES);
	struct rstate *n = realloc(r->states, (r->nstates + 1) * sizeof(*n));
	if (!n)
		return err_set(&r->err, -ENOMEM, "out of memory");
	r->states = n;
	r->states[r->nstates++] = *s;
	return 0;
}

static int load_states(bgsnap_reader *r)
{
	for (size_t i = 0; i < r->nindex; i++) {
		const struct run *x = &r->index[i];
		if (x->kind != FMT_REC_STATE)
			continue;
		uint8_t *b = NULL;
		size_t cap = 0;
		int rc = load_record(r, x->offset, x->span, FMT_REC_STATE, &b, &cap);
		struct rstate s = { .block = b };
		if (rc == 0)
			rc = parse_state(r, b + FMT_REC_HDR_LEN, x->span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN, x->offset, &s);
		if (rc == 0 && s.len != x->count)
			rc = bad(r, "STATE record at offset %llu: %zu bytes, the index says %llu", (ull)x->offset, s.len,
			         (ull)x->count);
		if (rc == 0)
			rc = add_state(r, &s, x->offset);
		if (rc < 0) {
			free(b);
			return rc;
		}
	}
	return 0;
}

static int reader_new(bgsnap_reader **out)
{
	bgsnap_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = -1;
	*out = r;
	return 0;
}

static int open_fail(bgsnap_reader **out, bgsnap_reader *r, int rc, char *err, size_t err_len)
{
	if (err && err_len)
		snprintf(err, err_len, "%s", r->err.msg[0] ? r->err.msg : "failed to open snapshot");
	bgsnap_reader_close(r);
	*out = NULL;
	return rc;
}

static int open_random(bgsnap_reader *r)
{
	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return err_sys(&r->err, -errno, "fstat");
	if (!S_ISREG(st.st_mode))
		return err_set(&r->err, -ESPIPE, "not a regular file: read it as a stream");
	r->file_size = (uint64_t)st.st_size;
	int rc = read_head(r);
	if (rc < 0)
		return rc;
	uint64_t sz = r->file_size;
	if (sz - r->header_end < MIN_INDEX_REC + FMT_TRAILER_REC_LEN)
		return diagnose_end(r, "file too short for an INDEX and a TRAILER");
	uint64_t toff = sz - FMT_TRAILER_REC_LEN;
	uint8_t t[FMT_TRAILER_REC_LEN];
	if ((rc = pread_exact(r, t, sizeof(t), toff, "the TRAILER")) < 0)
		return rc;
	/* Judge the trailer in a scratch error so diagnose_end can say more. */
	struct bgsnap_err keep = r->err;
	err_clear(&r->err);
	rc = check_rec_hdr(r, t, toff);
	if (rc == 0 && le32_load(t) != FMT_REC_TRAILER)
		rc = bad(r, "no TRAILER record at offset %llu (last %u bytes of the file)", (ull)toff,
		         FMT_TRAILER_REC_LEN);
	if (rc == 0)
		rc = check_crc(r, t, t + FMT_REC_HDR_LEN, FMT_TRAILER_LEN, t + FMT_REC_HDR_LEN + FMT_TRAILER_LEN,
		               toff, NULL);
	if (rc == 0)
		rc = parse_trailer(r, t + FMT_REC_HDR_LEN, toff);
	if (rc == -EBADMSG) {
		char why[sizeof(r->err.msg)];
		snprintf(why, sizeof(why), "%s", r->err.msg);
		err_clear(&r->err);
		return diagnose_end(r, why);
	}
	if (rc < 0)
		return rc;
	r->err = keep;
	r->have_trailer = 1;
	if ((rc = load_index(r)) < 0)
		return rc;
	return load_states(r);
}

int bgsnap_reader_open(bgsnap_reader **out, const char *path, char *err, size_t err_len)
{
	bgsnap_reader *r;
	*out = NULL;
	if (reader_new(&r) < 0) {
		if (err && err_len)
			snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return open_fail(out, r, err_sys(&r->err, -errno, "%s", path), err, err_len);
	r->owns_fd = 1;
	int rc = open_random(r);
	if (rc < 0)
		return open_fail(out, r, rc, err, err_len);
	*out = r;
	return 0;
}

int bgsnap_reader_open_stream(bgsnap_reader **out, int fd, char *err, size_t err_len)
{
	bgsnap_reader *r;
	*out = NULL;
	if (reader_new(&r) < 0) {
		if (err && err_len)
			snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	r->fd = fd;
	r->stream = 1;
	int rc = read_head(r);
	if (rc < 0)
		return open_fail(out, r, rc, err, err_len);
	*out = r;
	return 0;
}

static void seq_reset(bgsnap_reader *r)
{
	for (size_t i = 0; i < r->ncov; i++)
		if (r->cov[i] != COV_FULL)
			free(r->cov[i]);
	free(r->cov);
	r->cov = NULL;
	r->ncov = 0;
	r->cov_count = r->seq_zero = 0;
	r->seq_states = 0;
	r->nseen = 0;
	r->seq_state = 0;
}

void bgsnap_reader_close(bgsnap_reader *r)
{
	if (!r)
		return;
	seq_reset(r);
	if (r->owns_fd && r->fd >= 0)
		close(r->fd);
	if (r->regions)
		for (uint32_t i = 0; i < r->region_count; i++)
			free(r->regions[i].runs);
	free(r->regions);
	free(r->index);
	for (size_t i = 0; i < r->nstates; i++)
		free(r->states[i].block);
	free(r->states);
	free(r->cache);
	free(r->seen);
	free(r->buf);
	free(r);
}

const char *bgsnap_reader_errmsg(const bgsnap_reader *r)
{
	return r ? r->err.msg : "no reader";
}

/* ------------------------------------------------------------------------ */
/* Metadata.                                                                 */

/* Copies min(out_size, len) bytes of the library's struct and zero-fills
 * the rest of the caller's, so that either side may be the newer one. */
static void copy_sized(void *out, size_t out_size, const void *src, size_t len)
{
	size_t n = out_size < len ? out_size : len;
	memcpy(out, src, n);
	memset((char *)out + n, 0, out_size - n);
}

int bgsnap_reader_info(const bgsnap_reader *r, struct bgsnap_file_info *out, size_t out_size)
{
	if (!r || !out)
		return -EINVAL;
	struct bgsnap_file_info fi = {
		.version = r->version,
		.page_size = r->page_size,
		.region_count = r->region_count,
		.pages_total = r->pages_total,
	};
	if (r->have_trailer) {
		fi.state_count = r->state_count;
		fi.method = (int)r->method;
		fi.created_unix_ns = r->created_ns;
		fi.pages_zero = r->pages_zero;
		fi.pause_us = r->pause_us;
		fi.file_bytes = r->file_size;
		fi.index_offset = r->index_offset;
		/* A stream has no index in memory, but after END the records it
		 * saw are exactly the index's entries (checked one by one). */
		const struct run *v = r->stream ? r->seen : r->index;
		size_t n = r->stream ? r->nseen : r->nindex;
		fi.records = n;
		for (size_t i = 0; i < n; i++) {
			fi.page_records += v[i].kind == FMT_REC_PAGES;
			fi.zero_records += v[i].kind == FMT_REC_ZERO;
			fi.state_records += v[i].kind == FMT_REC_STATE;
		}
	}
	copy_sized(out, out_size, &fi, sizeof(fi));
	return 0;
}

int bgsnap_reader_region(const bgsnap_reader *r, unsigned idx, struct bgsnap_region_info *out,
                         size_t out_size)
{
	if (!r || !out)
		return -EINVAL;
	if (idx >= r->region_count)
		return -ENOENT;
	const struct rregion *g = &r->regions[idx];
	struct bgsnap_region_info ri = {
		.name = g->name,
		.addr = g->addr,
		.size = g->size,
		.pages_zero = r->have_trailer ? g->zero_pages : 0,
	};
	copy_sized(out, out_size, &ri, sizeof(ri));
	return 0;
}

int bgsnap_reader_find_region(const bgsnap_reader *r, const char *name)
{
	for (uint32_t i = 0; i < r->region_count; i++)
		if (!strcmp(r->regions[i].name, name))
			return (int)i;
	return -ENOENT;
}

int bgsnap_reader_state(const bgsnap_reader *r, unsigned idx, const char **name, const void **data,
                        size_t *len)
{
	if (!r->have_trailer || idx >= r->nstates)
		return -ENOENT;
	if (name)
		*name = r->states[idx].name;
	if (data)
		*data = r->states[idx].data;
	if (len)
		*len = r->states[idx].len;
	return 0;
}

int bgsnap_reader_find_state(const bgsnap_reader *r, const char *name, const void **data, size_t *len)
{
	if (!r->have_trailer)
		return -ENOENT;
	for (size_t i = 0; i < r->nstates; i++)
		if (!strcmp(r->states[i].name, name))
			return bgsnap_reader_state(r, (unsigned)i, NULL, data, len);
	return -ENOENT;
}

/* ------------------------------------------------------------------------ */
/* Sequential pass.                                                          */

static int cov_dup(bgsnap_reader *r, const struct rregion *g, uint64_t page, uint64_t off)
{
	return bad(r, "record at offset %llu: page %llu of region '%s' appears twice", (ull)off,
	           (ull)(page - g->base), g->name);
}

/* Marks [first, first+count) of region g as seen; a page seen before is an
 * error.  Chunks of the bitmap are allocated only where records land. */
static int cov_mark(bgsnap_reader *r, const struct rregion *g, uint64_t first, uint64_t count, uint64_t off)
{
	if (!r->cov) {
		r->ncov = (size_t)(r->pages_total / COV_CHUNK_PAGES + 1);
		if (!(r->cov = calloc(r->ncov, sizeof(*r->cov))))
			return err_set(&r->err, -ENOMEM, "out of memory");
	}
	uint64_t b = g->base + first, e = b + count;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t i = b; i < e;) {
			uint64_t c = i / COV_CHUNK_PAGES, in = i % COV_CHUNK_PAGES;
			if (r->cov[c] == COV_FULL)
				return cov_dup(r, g, i, off);   /* only pass 0 can get here */
			if (in == 0 && e - i >= COV_CHUNK_PAGES) {
				if (pass == 0 && r->cov[c]) {
					for (size_t k = 0; k < COV_CHUNK_PAGES / 64; k++)
						if (r->cov[c][k])
							return cov_dup(r, g, i + 64 * k + (uint64_t)__builtin_ctzll(r->cov[c][k]), off);
				}
				if (pass == 1) {
					free(r->cov[c]);   /* allocated but empty: pass 0 saw no bit */
					r->cov[c] = COV_FULL;
				}
				i += COV_CHUNK_PAGES;
				continue;
			}
			if (!r->cov[c] && !(r->cov[c] = calloc(COV_CHUNK_PAGES / 64, sizeof(uint64_t))))
				return err_set(&r->err, -ENOMEM, "out of memory");
			uint64_t *w = &r->cov[c][in / 64];
			uint64_t bit = in % 64, n = 64 - bit < e - i ? 64 - bit : e - i;
			uint64_t mask = (n == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << n) - 1)) << bit;
			if (pass == 0 && (*w & mask))
				return cov_dup(r, g, i + (uint64_t)__builtin_ctzll(*w & mask) - bit, off);
			if (pass == 1)
				*w |= mask;
			i += n;
		}
	}
	r->cov_count += count;
	return 0;
}

static int first_missing(const bgsnap_reader *r, uint32_t *region, uint64_t *page)
{
	for (uint64_t i = 0; i < r->pages_total; i++) {
		const uint64_t *c = r->cov ? r->cov[i / COV_CHUNK_PAGES] : NULL;
		if (c == COV_FULL) {
			i = (i / COV_CHUNK_PAGES + 1) * COV_CHUNK_PAGES - 1;
			continue;
		}
		if (c && i % 64 == 0 && c[(i % COV_CHUNK_PAGES) / 64] == ~UINT64_C(0)) {
			i += 63;   /* a full word: skip it */
			continue;
		}
		if (!c || !(c[(i % COV_CHUNK_PAGES) / 64] >> (i % 64) & 1)) {
			uint32_t g = 0;
			while (g + 1 < r->region_count && r->regions[g + 1].base <= i)
				g++;
			*region = g;
			*page = i - r->regions[g].base;
			return 1;
		}
	}
	return 0;
}

static int seen_add(bgsnap_reader *r, const struct run *x)
{
	if (r->nseen == r->seen_cap) {
		size_t cap = r->seen_cap ? r->seen_cap * 2 : 256;
		struct run *n = realloc(r->seen, cap * sizeof(*n));
		if (!n)
			return err_set(&r->err, -ENOMEM, "out of memory");
		r->seen = n;
		r->seen_cap = cap;
	}
	r->seen[r->nseen++] = *x;
	return 0;
}

static int entry_mismatch(bgsnap_reader *r, size_t i, const struct run *ix, const struct run *rec)
{
	return bad(r, "INDEX entry %zu (%s region %u pages %llu+%llu at offset %llu) does not match the record "
	           "at offset %llu (%s region %u pages %llu+%llu)", i, type_name(ix->kind), ix->region,
	           (ull)ix->first, (ull)ix->count, (ull)ix->offset, (ull)rec->offset, type_name(rec->kind),
	           rec->region, (ull)rec->first, (ull)rec->count);
}

static int same_run(const struct run *a, const struct run *b)
{
	return a->kind == b->kind && a->region == b->region && a->first == b->first && a->count == b->count &&
	       a->offset == b->offset;
}

/* INDEX payload (in r->buf) against the records seen, then the TRAILER and
 * the end of input. */
static int seq_finish(bgsnap_reader *r, uint64_t ioff, uint64_t plen)
{
	uint64_t n = le64_load(r->buf);
	if (n != r->nseen || plen != 8 + n * FMT_INDEX_ENTRY_LEN)
		return bad(r, "INDEX at offset %llu: %llu entries, %zu records precede it", (ull)ioff, (ull)n,
		           r->nseen);
	const uint8_t *e = r->buf + 8;
	for (size_t i = 0; i < r->nseen; i++, e += FMT_INDEX_ENTRY_LEN) {
		struct run x = { le32_load(e), le32_load(e + 4), le64_load(e + 8), le64_load(e + 16),
		                 le64_load(e + 24), 0 };
		if (!same_run(&x, &r->seen[i]))
			return entry_mismatch(r, i, &x, &r->seen[i]);
	}
	if (r->cov_count != r->pages_total) {
		uint32_t g = 0;
		uint64_t p = 0;
		first_missing(r, &g, &p);
		return bad(r, "INDEX at offset %llu: %llu of %llu pages are in no record (first: page %llu of "
		           "region '%s')", (ull)ioff, (ull)(r->pages_total - r->cov_count), (ull)r->pages_total,
		           (ull)p, r->regions[g].name);
	}
	uint32_t type, before;
	uint64_t len, toff;
	int rc = seq_record(r, &type, &len, &toff, &before);
	if (rc == 0)
		return bad(r, "truncated: file ends at offset %llu, where the TRAILER should start", (ull)r->pos);
	if (rc < 0)
		return rc;
	if (type != FMT_REC_TRAILER)
		return bad(r, "record at offset %llu: %s after the INDEX, expected TRAILER", (ull)toff, type_name(type));
	if ((rc = parse_trailer(r, r->buf, toff)) < 0)
		return rc;
	if (r->index_offset != ioff)
		return bad(r, "TRAILER at offset %llu: index offset %llu, the INDEX is at %llu", (ull)toff,
		           (ull)r->index_offset, (ull)ioff);
	if (r->pages_zero != r->seq_zero)
		return bad(r, "TRAILER at offset %llu: %llu zero pages, the records hold %llu", (ull)toff,
		           (ull)r->pages_zero, (ull)r->seq_zero);
	if (r->state_count != r->seq_states)
		return bad(r, "TRAILER at offset %llu: %u state blobs, the records hold %u", (ull)toff,
		           r->state_count, r->seq_states);
	if (crc_differs(r->file_crc_stored, before))
		return bad(r, "TRAILER at offset %llu: whole-file checksum mismatch (stored 0x%08x, computed 0x%08x)",
		           (ull)toff, r->file_crc_stored, before);
	if (r->stream) {
		uint8_t extra;
		ssize_t x = src_read(r, &extra, 1);
		if (x < 0)
			return (int)x;
		if (x > 0)
			return bad(r, "trailing data after the TRAILER record at offset %llu", (ull)toff);
		r->file_size = r->pos;
		r->have_trailer = 1;
	} else if (r->pos != r->file_size) {
		return bad(r, "%llu bytes of trailing data after the TRAILER record at offset %llu",
		           (ull)(r->file_size - r->pos), (ull)toff);
	}
	return 0;
}

static int seq_next(bgsnap_reader *r, struct bgsnap_record *rec)
{
	uint32_t type, before;
	uint64_t len, off;
	int rc = seq_record(r, &type, &len, &off, &before);
	if (rc == 0)
		return bad(r, "truncated: file ends at offset %llu, before the INDEX record", (ull)r->pos);
	if (rc < 0)
		return rc;
	memset(rec, 0, sizeof(*rec));
	rec->offset = off;
	const uint8_t *p = r->buf;
	struct run x = { .kind = type, .offset = off };
	switch (type) {
	case FMT_REC_PAGES:
	case FMT_REC_ZERO: {
		x.region = le32_load(p);
		x.first = le64_load(p + 8);
		x.count = le64_load(p + 16);
		if (x.region >= r->region_count)
			return bad(r, "record at offset %llu (%s): region %u does not exist (%u regions)", (ull)off,
			           type_name(type), x.region, r->region_count);
		if (le32_load(p + 4))
			return bad(r, "record at offset %llu (%s): reserved field is 0x%x, must be 0", (ull)off,
			           type_name(type), le32_load(p + 4));
		const struct rregion *g = &r->regions[x.region];
		uint64_t want = type == FMT_REC_PAGES ? (len - FMT_RUN_PREFIX_LEN) / r->page_size : x.count;
		if (x.count != want || x.count < 1 || x.count > FMT_MAX_ZERO_RUN)
			return bad(r, "record at offset %llu (%s): page count %llu invalid for its length %llu",
			           (ull)off, type_name(type), (ull)x.count, (ull)len);
		if (x.first > g->pages || x.count > g->pages - x.first)
			return bad(r, "record at offset %llu (%s): pages %llu+%llu outside region '%s' (%llu pages)",
			           (ull)off, type_name(type), (ull)x.first, (ull)x.count, g->name, (ull)g->pages);
		if ((rc = cov_mark(r, g, x.first, x.count, off)) < 0)
			return rc;
		if (type == FMT_REC_ZERO) {
			r->seq_zero += x.count;
			/* A file has its per-region counts from the index already. */
			if (r->stream)
				r->regions[x.region].zero_pages += x.count;
		}
		rec->kind = type == FMT_REC_PAGES ? BGSNAP_REC_PAGES : BGSNAP_REC_ZERO;
		rec->region = x.region;
		rec->first_page = x.first;
		rec->count = x.count;
		rec->data = type == FMT_REC_PAGES ? p + FMT_RUN_PREFIX_LEN : NULL;
		break;
	}
	case FMT_REC_STATE: {
		struct rstate s = { 0 };
		if ((rc = parse_state(r, p, len, off, &s)) < 0)
			return rc;
		x.count = s.len;
		r->seq_states++;
		if (r->stream) {
			/* Keep the blob: the record buffer becomes the state's. */
			s.block = r->buf;
			if ((rc = add_state(r, &s, off)) < 0)
				return rc;
			r->buf = NULL;
			r->buf_cap = 0;
			rec->name = r->states[r->nstates - 1].name;
		} else {
			if (r->seq_states > r->nstates || strcmp(r->states[r->seq_states - 1].name, s.name))
				return bad(r, "STATE record at offset %llu: '%s' is not the state the index names", (ull)off,
				           s.name);
			rec->name = r->states[r->seq_states - 1].name;
		}
		rec->kind = BGSNAP_REC_STATE;
		rec->data = s.data;
		rec->len = s.len;
		break;
	}
	case FMT_REC_INDEX:
		if ((rc = seq_finish(r, off, len)) < 0)
			return rc;
		rec->kind = BGSNAP_REC_END;
		r->seq_state = 1;
		return 1;
	default:
		return bad(r, "record at offset %llu: unexpected %s record", (ull)off, type_name(type));
	}
	/* A file's records must match its index as they come, so verify names
	 * the first record that disagrees. */
	if (!r->stream && (r->nseen >= r->nindex || !same_run(&r->index[r->nseen], &x)))
		return r->nseen >= r->nindex
		               ? bad(r, "record at offset %llu (%s) is not in the index (%zu entries)", (ull)off,
		                     type_name(type), r->nindex)
		               : entry_mismatch(r, r->nseen, &r->index[r->nseen], &x);
	if ((rc = seen_add(r, &x)) < 0)
		return rc;
	return 1;
}

int bgsnap_reader_next(bgsnap_reader *r, struct bgsnap_record *rec)
{
	if (r->seq_state < 0)
		return r->seq_state;
	if (r->seq_state == 1)
		return 0;
	err_clear(&r->err);
	if (!r->stream && r->pos < r->header_end) {
		r->pos = r->header_end;
		r->file_crc = r->header_crc;
	}
	int rc = seq_next(r, rec);
	if (rc < 0)
		r->seq_state = rc;
	return rc;
}

int bgsnap_reader_rewind(bgsnap_reader *r)
{
	if (r->stream)
		return -ESPIPE;
	seq_reset(r);
	r->pos = r->header_end;
	r->file_crc = r->header_crc;
	err_clear(&r->err);
	return 0;
}

int bgsnap_reader_verify(bgsnap_reader *r)
{
	int rc = bgsnap_reader_rewind(r);
	if (rc == -ESPIPE)
		rc = 0;   /* a stream verifies what is left of it */
	if (rc < 0)
		return rc;
	struct bgsnap_record rec;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0)
		if (rec.kind == BGSNAP_REC_END)
			return 0;
	return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------ */
/* Random access.                                                            */

static const struct run *find_run(const struct rregion *g, uint64_t page)
{
	size_t lo = 0, hi = g->nruns;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct run *x = &g->runs[mid];
		if (page < x->first)
			hi = mid;
		else if (page >= x->first + x->count)
			lo = mid + 1;
		else
			return x;
	}
	return NULL;
}

/* 1 if the PAGES/ZERO record header of `x` (first HEAD_LEN bytes) agrees with its entry. */
static int run_head_matches(const struct run *x, const uint8_t *h)
{
	return le32_load(h) == x->kind && !le32_load(h + 4) &&
	       le64_load(h + 8) == x->span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN && le32_load(h + 16) == x->region &&
	       !le32_load(h + 20) && le64_load(h + 24) == x->first && le64_load(h + 32) == x->count;
}

static int run_head_ok(bgsnap_reader *r, const struct run *x, const uint8_t *h)
{
	if (!run_head_matches(x, h))
		return bad(r, "record at offset %llu does not match its INDEX entry (%s region %u pages %llu+%llu)",
		           (ull)x->offset, type_name(x->kind), x->region, (ull)x->first, (ull)x->count);
	return 0;
}

int bgsnap_reader_read_page(bgsnap_reader *r, unsigned region, uint64_t page, void *dst)
{
	if (r->stream)
		return -ESPIPE;
	if (region >= r->region_count || page >= r->regions[region].pages)
		return -ENOENT;
	err_clear(&r->err);
	const struct run *x = find_run(&r->regions[region], page);
	if (!x)
		return bad(r, "page %llu of region '%s' is in no record", (ull)page, r->regions[region].name);
	if (x->kind == FMT_REC_ZERO) {
		memset(dst, 0, r->page_size);
		return 0;
	}
	if (!r->cache_valid || r->cache_off != x->offset) {
		r->cache_valid = 0;
		int rc = load_record(r, x->offset, x->span, FMT_REC_PAGES, &r->cache, &r->cache_cap);
		if (rc == 0)
			rc = run_head_ok(r, x, r->cache);
		if (rc < 0)
			return rc;
		r->cache_valid = 1;
		r->cache_off = x->offset;
	}
	memcpy(dst, r->cache + HEAD_LEN + (page - x->first) * r->page_size, r->page_size);
	return 0;
}

int bgsnap_reader_read_region(bgsnap_reader *r, unsigned region, void *dst, size_t dst_len, unsigned flags)
{
	if (r->stream)
		return -ESPIPE;
	if (region >= r->region_count)
		return -ENOENT;
	const struct rregion *g = &r->regions[region];
	if (dst_len != g->size)
		return -EINVAL;
	err_clear(&r->err);
	uint8_t *d = dst;
	for (size_t k = 0; k < g->nruns; k++) {
		const struct run *x = &g->runs[k];
		/* Checked at open: first + count <= pages, so this stays in dst. */
		uint8_t *at = d + x->first * r->page_size;
		size_t n = (size_t)(x->count * r->page_size);
		if (x->kind == FMT_REC_ZERO) {
			if (!(flags & BGSNAP_READ_DST_ZEROED))
				memset(at, 0, n);
			continue;
		}
		uint8_t h[HEAD_LEN], crcb[4];
		struct iovec iov[3] = { { h, sizeof(h) }, { at, n }, { crcb, 4 } };
		size_t want = sizeof(h) + n + 4, got = 0;
		while (got < want) {
			ssize_t m = preadv(r->fd, iov, 3, (off_t)(x->offset + got));
			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return err_sys(&r->err, -errno, "reading the record at offset %llu", (ull)x->offset);
			if (m == 0)
				return bad(r, "truncated: file ends at offset %llu inside PAGES record starting at offset %llu",
				           (ull)(x->offset + got), (ull)x->offset);
			got += (size_t)m;
			/* Advance the iovecs past what was read. */
			size_t skip = (size_t)m;
			for (int i = 0; i < 3 && skip; i++) {
				size_t t = skip < iov[i].iov_len ? skip : iov[i].iov_len;
				iov[i].iov_base = (char *)iov[i].iov_base + t;
				iov[i].iov_len -= t;
				skip -= t;
			}
		}
		int rc = run_head_ok(r, x, h);
		if (rc < 0)
			return rc;
		uint32_t c = crc32c(crc32c(0, h, sizeof(h)), at, n);
		if (crc_differs(le32_load(crcb), c))
			return bad(r, "record at offset %llu (PAGES): checksum mismatch (stored 0x%08x, computed 0x%08x)",
			           (ull)x->offset, le32_load(crcb), c);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Restore's file-order access (reader.h): reads nothing, changes nothing.  */

size_t reader_run_count(const bgsnap_reader *r)
{
	return r->stream ? 0 : r->nindex;
}

int reader_run_get(const bgsnap_reader *r, size_t i, struct reader_run *out)
{
	if (r->stream || i >= r->nindex)
		return -ENOENT;
	const struct run *x = &r->index[i];
	*out = (struct reader_run){ x->kind, x->region, x->first, x->count, x->offset, x->span };
	return 0;
}

int reader_fd(const bgsnap_reader *r)
{
	return r->fd;
}

int reader_run_check(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct bgsnap_err *err)
{
	if (r->stream || i >= r->nindex)
		return err_set(err, -ENOENT, "no index entry %zu", i);
	const struct run *x = &r->index[i];
	if (x->kind == FMT_REC_STATE)
		return 0;   /* checked at open */
	if (!run_head_matches(x, rec))
		return err_set(err, -EBADMSG, "record at offset %llu does not match its INDEX entry (%s region %u pages "
		               "%llu+%llu)", (ull)x->offset, type_name(x->kind), x->region, (ull)x->first, (ull)x->count);
	uint32_t c = crc32c(0, rec, x->span - FMT_REC_CRC_LEN), stored = le32_load(rec + x->span - FMT_REC_CRC_LEN);
	if (crc_differs(stored, c))
		return err_set(err, -EBADMSG, "record at offset %llu (%s): checksum mismatch (stored 0x%08x, computed "
		               "0x%08x)", (ull)x->offset, type_name(x->kind), stored, c);
	return 0;
}
