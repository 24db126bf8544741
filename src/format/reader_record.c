/*
 * reader_record.c - one record at a time, for both ways in: the byte
 * sources (stream read, file pread), a record header's framing and crc, and
 * the checks of a PAGES/ZERO record against its index entry that
 * random access and restore share.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/crc32c.h"
#include "format/le.h"
#include "format/reader_int.h"

#define MAX_HEADER_LEN  (FMT_HEADER_FIXED_LEN + FMT_LINEAGE_LEN + FMT_MAX_REGIONS * (FMT_REGION_FIXED_LEN + FMT_NAME_MAX))

const char *rd_type_name(uint32_t t)
{
	static const char *names[] = { "?", "HEADER", "PAGES", "ZERO", "STATE", "INDEX", "TRAILER", "CPAGES", "PAD" };
	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

int rd_bad(bgsnap_reader *r, const char *fmt, ...)
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

/* ------------------------------------------------------------------------ */
/* Byte sources.                                                            */

/* Reads up to len bytes at r->pos (random) or from the stream, advancing
 * r->pos; returns the count (short only at end of file) or -errno. */
ssize_t rd_src_read(bgsnap_reader *r, void *buf, size_t len)
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
int rd_pread_exact(bgsnap_reader *r, void *buf, size_t len, uint64_t off, const char *what)
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
			return rd_bad(r, "truncated: file ends at offset %llu inside %s at offset %llu",
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
	case FMT_REC_CPAGES:
		/* A frame never as large as the pages it holds (those are PAGES). */
		return len > FMT_RUN_PREFIX_LEN && len - FMT_RUN_PREFIX_LEN < (uint64_t)FMT_MAX_CPAGES * ps;
	case FMT_REC_PAD:
		return len <= FMT_MAX_PAD;
	}
	return 0;
}

/* Checks a record header's type, flags and payload length (not the crc). */
int rd_check_hdr(bgsnap_reader *r, const uint8_t *h, uint64_t off)
{
	uint32_t type = le32_load(h), flags = le32_load(h + 4);
	uint64_t len = le64_load(h + 8);
	if (type == FMT_REC_CPAGES && r->version < FMT_VERSION_CPAGES)
		return rd_bad(r, "record at offset %llu: CPAGES (type 7, compressed pages) is an unsupported "
		              "encoding in format v1", (ull)off);
	if (type < FMT_REC_HEADER || type > FMT_REC_PAD || (type == FMT_REC_PAD && !r->aligned))
		return rd_bad(r, "record at offset %llu: unknown record type %u%s", (ull)off, type,
		              type == FMT_REC_PAD ? " (PAD, allowed in format version 4 only)" : "");
	if (flags)
		return rd_bad(r, "record at offset %llu (%s): flags 0x%x, must be 0", (ull)off, rd_type_name(type),
		              flags);
	if (!payload_len_ok(type, len, r->page_size ? r->page_size : FMT_PAGE_SIZE))
		return rd_bad(r, "record at offset %llu (%s): invalid payload length %llu", (ull)off,
		              rd_type_name(type), (ull)len);
	return 0;
}

int rd_check_crc(bgsnap_reader *r, const uint8_t *h, const uint8_t *payload, uint64_t len,
                 const uint8_t *crcb, uint64_t off, uint32_t *rec_crc)
{
	uint32_t c = crc32c(crc32c(0, h, FMT_REC_HDR_LEN), payload, len);
	uint32_t stored = le32_load(crcb);
	if (rd_crc_differs(stored, c))
		return rd_bad(r, "record at offset %llu (%s): checksum mismatch (stored 0x%08x, computed 0x%08x)",
		              (ull)off, rd_type_name(le32_load(h)), stored, c);
	if (rec_crc)
		*rec_crc = c;
	return 0;
}

/*
 * Sequential: reads the record at r->pos into r->buf (payload) after checking
 * its header, bounds and crc; folds it into the running file crc.  Returns 1,
 * 0 at a clean end of input (no byte of a new record), or a negative errno.
 */
int rd_seq_record(bgsnap_reader *r, uint32_t *type, uint64_t *plen, uint64_t *off, uint32_t *crc_before)
{
	uint8_t h[FMT_REC_HDR_LEN], crcb[4];
	*off = r->pos;
	*crc_before = r->file_crc;
	ssize_t n = rd_src_read(r, h, sizeof(h));
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(h))
		return rd_bad(r, "truncated: file ends at offset %llu inside the header of a record starting at "
		              "offset %llu", (ull)r->pos, (ull)*off);
	int rc = rd_check_hdr(r, h, *off);
	if (rc < 0)
		return rc;
	*type = le32_load(h);
	uint64_t len = *plen = le64_load(h + 8);
	if (!r->stream && len + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN > r->file_size - *off)
		return rd_bad(r, "truncated: file ends at offset %llu inside %s record starting at offset %llu "
		              "(%llu bytes long)", (ull)r->file_size, rd_type_name(*type), (ull)*off,
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
		n = rd_src_read(r, r->buf + got, want - got);
		if (n < 0)
			return (int)n;
		got += (size_t)n;
		if (got < want)
			return rd_bad(r, "truncated: file ends at offset %llu inside %s record starting at offset "
			              "%llu (%llu bytes long)", (ull)r->pos, rd_type_name(*type), (ull)*off,
			              (ull)(len + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN));
	}
	if ((rc = buf_reserve(r, 1)) < 0)
		return rc;
	n = rd_src_read(r, crcb, 4);
	if (n < 0)
		return (int)n;
	if (n < 4)
		return rd_bad(r, "truncated: file ends at offset %llu inside %s record starting at offset %llu",
		              (ull)r->pos, rd_type_name(*type), (ull)*off);
	uint32_t c;
	if ((rc = rd_check_crc(r, h, r->buf, len, crcb, *off, &c)) < 0)
		return rc;
	r->file_crc = crc32c(crc32c_combine(r->file_crc, c, FMT_REC_HDR_LEN + len), crcb, 4);
	return 1;
}

int rd_seq_expect(bgsnap_reader *r, uint32_t want, const char *at_end, const char *after, uint64_t *plen,
                  uint64_t *off, uint32_t *crc_before)
{
	uint32_t type;
	int rc = rd_seq_record(r, &type, plen, off, crc_before);
	if (rc == 0)
		return rd_bad(r, "truncated: file ends at offset %llu, %s", (ull)r->pos, at_end);
	if (rc < 0)
		return rc;
	if (type != want)
		return rd_bad(r, "record at offset %llu: %s%s, expected %s", (ull)*off, rd_type_name(type), after,
		              rd_type_name(want));
	return 0;
}

/* Random access: reads the whole record [off, off+span) into *bufp (grown as
 * needed) and checks its header (type, flags, length == span) and crc. */
int rd_load_record(bgsnap_reader *r, uint64_t off, uint64_t span, uint32_t want_type, uint8_t **bufp,
                   size_t *capp)
{
	if (span > *capp) {
		uint8_t *n = realloc(*bufp, span);
		if (!n)
			return err_set(&r->err, -ENOMEM, "out of memory (%llu bytes for a record)", (ull)span);
		*bufp = n;
		*capp = span;
	}
	uint8_t *b = *bufp;
	int rc = rd_pread_exact(r, b, span, off, "a record");
	if (rc < 0)
		return rc;
	if ((rc = rd_check_hdr(r, b, off)) < 0)
		return rc;
	if (le32_load(b) != want_type)
		return rd_bad(r, "record at offset %llu: type %s, the index says %s", (ull)off,
		              rd_type_name(le32_load(b)), rd_type_name(want_type));
	uint64_t len = le64_load(b + 8);
	if (len != span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN)
		return rd_bad(r, "record at offset %llu (%s): payload length %llu, the index implies %llu", (ull)off,
		              rd_type_name(want_type), (ull)len, (ull)(span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN));
	return rd_check_crc(r, b, b + FMT_REC_HDR_LEN, len, b + span - 4, off, NULL);
}

/* ------------------------------------------------------------------------ */
/* A PAGES/ZERO record against its index entry.                             */

static int run_head_matches(const struct run *x, const uint8_t *h)
{
	uint32_t reserved = x->kind == FMT_REC_CPAGES ? FMT_CODEC_ZSTD : 0;   /* CPAGES: the codec */
	return le32_load(h) == x->kind && !le32_load(h + 4) &&
	       le64_load(h + 8) == x->span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN && le32_load(h + 16) == x->region &&
	       le32_load(h + 20) == reserved && le64_load(h + 24) == x->first && le64_load(h + 32) == x->count;
}

int rd_check_run_head(const struct run *x, const uint8_t *h, struct bgsnap_err *err)
{
	if (!run_head_matches(x, h))
		return err_set(err, -EBADMSG, "record at offset %llu does not match its INDEX entry (%s region %u "
		               "pages %llu+%llu)", (ull)x->offset, rd_type_name(x->kind), x->region, (ull)x->first,
		               (ull)x->count);
	return 0;
}

int rd_check_run_crc(const struct run *x, uint32_t stored, uint32_t computed, struct bgsnap_err *err)
{
	if (rd_crc_differs(stored, computed))
		return err_set(err, -EBADMSG, "record at offset %llu (%s): checksum mismatch (stored 0x%08x, "
		               "computed 0x%08x)", (ull)x->offset, rd_type_name(x->kind), stored, computed);
	return 0;
}
