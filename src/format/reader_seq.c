/*
 * reader_seq.c - the sequential pass (bgsnap_reader_next): one record at a
 * time, on a stream or a rewound file, each checked as it comes (crc,
 * bounds, every page exactly once, a file's records against its index),
 * then the INDEX and TRAILER against what was seen and the end of input.
 * bgsnap_reader_verify is this pass over the whole file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/le.h"
#include "format/reader.h"
#include "format/reader_int.h"

static int seen_add(bgsnap_reader *r, const struct run *x)
{
	if (r->seq.nseen == r->seq.seen_cap) {
		size_t cap = r->seq.seen_cap ? r->seq.seen_cap * 2 : 256;
		struct run *n = realloc(r->seq.seen, cap * sizeof(*n));
		if (!n)
			return err_set(&r->err, -ENOMEM, "out of memory");
		r->seq.seen = n;
		r->seq.seen_cap = cap;
	}
	r->seq.seen[r->seq.nseen++] = *x;
	return 0;
}

static int entry_mismatch(bgsnap_reader *r, size_t i, const struct run *ix, const struct run *rec)
{
	return rd_bad(r, "INDEX entry %zu (%s region %u pages %llu+%llu at offset %llu) does not match the record "
	              "at offset %llu (%s region %u pages %llu+%llu)", i, rd_type_name(ix->kind), ix->region,
	              (ull)ix->first, (ull)ix->count, (ull)ix->offset, (ull)rec->offset, rd_type_name(rec->kind),
	              rec->region, (ull)rec->first, (ull)rec->count);
}

static int same_run(const struct run *a, const struct run *b)
{
	return a->kind == b->kind && a->region == b->region && a->first == b->first && a->count == b->count &&
	       a->offset == b->offset;
}

/* The INDEX payload (in r->buf) names exactly the records seen, and they
 * covered every page (an incremental file: any pages, each at most once,
 * which rd_cov_mark saw to). */
static int index_matches_seen(bgsnap_reader *r, uint64_t ioff, uint64_t plen)
{
	uint64_t n = le64_load(r->buf);
	if (n != r->seq.nseen || plen != 8 + n * FMT_INDEX_ENTRY_LEN)
		return rd_bad(r, "INDEX at offset %llu: %llu entries, %zu records precede it", (ull)ioff, (ull)n,
		              r->seq.nseen);
	const uint8_t *e = r->buf + 8;
	for (size_t i = 0; i < r->seq.nseen; i++, e += FMT_INDEX_ENTRY_LEN) {
		struct run x = { le32_load(e), le32_load(e + 4), le64_load(e + 8), le64_load(e + 16),
		                 le64_load(e + 24), 0 };
		if (!same_run(&x, &r->seq.seen[i]))
			return entry_mismatch(r, i, &x, &r->seq.seen[i]);
	}
	if (r->seq.cov_count != r->pages_total && !r->incremental) {
		uint32_t g = 0;
		uint64_t p = 0;
		rd_cov_first_missing(r, &g, &p);
		return rd_bad(r, "INDEX at offset %llu: %llu of %llu pages are in no record (first: page %llu of "
		              "region '%s')", (ull)ioff, (ull)(r->pages_total - r->seq.cov_count), (ull)r->pages_total,
		              (ull)p, r->regions[g].name);
	}
	return 0;
}

/* The TRAILER after the INDEX at `ioff`, against the records seen and the
 * running file crc; its offset into *toff. */
static int trailer_matches_seen(bgsnap_reader *r, uint64_t ioff, uint64_t *toff)
{
	uint32_t before;
	uint64_t len;
	int rc = rd_seq_expect(r, FMT_REC_TRAILER, "where the TRAILER should start", " after the INDEX", &len, toff,
	                       &before);
	if (rc == 0)
		rc = rd_parse_trailer(r, r->buf, *toff);
	if (rc < 0)
		return rc;
	if (r->index_offset != ioff)
		return rd_bad(r, "TRAILER at offset %llu: index offset %llu, the INDEX is at %llu", (ull)*toff,
		              (ull)r->index_offset, (ull)ioff);
	if (r->pages_zero != r->seq.zero)
		return rd_bad(r, "TRAILER at offset %llu: %llu zero pages, the records hold %llu", (ull)*toff,
		              (ull)r->pages_zero, (ull)r->seq.zero);
	if (r->state_count != r->seq.states)
		return rd_bad(r, "TRAILER at offset %llu: %u state blobs, the records hold %u", (ull)*toff,
		              r->state_count, r->seq.states);
	if (rd_crc_differs(r->file_crc_stored, before))
		return rd_bad(r, "TRAILER at offset %llu: whole-file checksum mismatch (stored 0x%08x, computed 0x%08x)",
		              (ull)*toff, r->file_crc_stored, before);
	return 0;
}

/* Nothing may follow the TRAILER at `toff`.  A stream learns its size and
 * its trailer here. */
static int end_of_input(bgsnap_reader *r, uint64_t toff)
{
	if (r->stream) {
		uint8_t extra;
		ssize_t x = rd_src_read(r, &extra, 1);
		if (x < 0)
			return (int)x;
		if (x > 0)
			return rd_bad(r, "trailing data after the TRAILER record at offset %llu", (ull)toff);
		r->file_size = r->pos;
		r->have_trailer = 1;
	} else if (r->pos != r->file_size) {
		return rd_bad(r, "%llu bytes of trailing data after the TRAILER record at offset %llu",
		              (ull)(r->file_size - r->pos), (ull)toff);
	}
	return 0;
}

/* A PAGES, CPAGES or ZERO record (payload in r->buf) into *x and *rec; a
 * CPAGES record's pages are decoded, so callers see PAGES. */
static int seq_run(bgsnap_reader *r, uint32_t type, uint64_t len, uint64_t off, struct run *x,
                   struct bgsnap_record *rec)
{
	const uint8_t *p = r->buf;
	x->region = le32_load(p);
	x->first = le64_load(p + 8);
	x->count = le64_load(p + 16);
	if (x->region >= r->region_count)
		return rd_bad(r, "record at offset %llu (%s): region %u does not exist (%u regions)", (ull)off,
		              rd_type_name(type), x->region, r->region_count);
	uint32_t reserved = type == FMT_REC_CPAGES ? FMT_CODEC_ZSTD : 0;
	if (le32_load(p + 4) != reserved)
		return rd_bad(r, "record at offset %llu (%s): %s is 0x%x, must be %u", (ull)off, rd_type_name(type),
		              type == FMT_REC_CPAGES ? "codec" : "reserved field", le32_load(p + 4), reserved);
	if (type == FMT_REC_PAGES && r->aligned && (off + RD_HEAD_LEN) % r->page_size)
		return rd_bad(r, "record at offset %llu (PAGES): its data at offset %llu is not page-aligned (format "
		              "version 4 requires it)", (ull)off, (ull)(off + RD_HEAD_LEN));
	const struct rregion *g = &r->regions[x->region];
	uint64_t want = type == FMT_REC_PAGES ? (len - FMT_RUN_PREFIX_LEN) / r->page_size : x->count;
	uint64_t maxc = type == FMT_REC_CPAGES ? FMT_MAX_CPAGES : FMT_MAX_ZERO_RUN;
	/* CPAGES: a frame smaller than the pages it holds (payload_len_ok
	 * bounded it by the largest chunk already). */
	if (type == FMT_REC_CPAGES && x->count <= FMT_MAX_CPAGES && len - FMT_RUN_PREFIX_LEN >= x->count * r->page_size)
		want = 0;
	if (x->count != want || x->count < 1 || x->count > maxc)
		return rd_bad(r, "record at offset %llu (%s): page count %llu invalid for its length %llu", (ull)off,
		              rd_type_name(type), (ull)x->count, (ull)len);
	if (x->first > g->pages || x->count > g->pages - x->first)
		return rd_bad(r, "record at offset %llu (%s): pages %llu+%llu outside region '%s' (%llu pages)",
		              (ull)off, rd_type_name(type), (ull)x->first, (ull)x->count, g->name, (ull)g->pages);
	int rc = rd_cov_mark(r, g, x->first, x->count, off);
	if (rc < 0)
		return rc;
	if (type == FMT_REC_ZERO) {
		r->seq.zero += x->count;
		/* A file has its per-region counts from the index already. */
		if (r->stream)
			r->regions[x->region].zero_pages += x->count;
	}
	if (type != FMT_REC_ZERO && r->stream)
		r->stored_bytes += len + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN;
	rec->kind = type == FMT_REC_ZERO ? BGSNAP_REC_ZERO : BGSNAP_REC_PAGES;
	rec->region = x->region;
	rec->first_page = x->first;
	rec->count = x->count;
	rec->data = type == FMT_REC_PAGES ? p + FMT_RUN_PREFIX_LEN : NULL;
	if (type == FMT_REC_CPAGES) {
		const uint8_t *pages;
		rc = rd_decode(&r->seq.dec, x, p + FMT_RUN_PREFIX_LEN, len - FMT_RUN_PREFIX_LEN, &pages, &r->err);
		rec->data = pages;
	}
	return rc;
}

/* A STATE record (payload in r->buf) into *x and *rec.  A stream keeps the
 * blob; a file's must be the one its index named at open. */
static int seq_state(bgsnap_reader *r, uint64_t len, uint64_t off, struct run *x, struct bgsnap_record *rec)
{
	struct rstate s = { 0 };
	int rc = rd_parse_state(r, r->buf, len, off, &s);
	if (rc < 0)
		return rc;
	x->count = s.len;
	r->seq.states++;
	if (r->stream) {
		/* The record buffer becomes the state's. */
		s.block = r->buf;
		if ((rc = rd_add_state(r, &s, off)) < 0)
			return rc;
		r->buf = NULL;
		r->buf_cap = 0;
		rec->name = r->states[r->nstates - 1].name;
	} else {
		if (r->seq.states > r->nstates || strcmp(r->states[r->seq.states - 1].name, s.name))
			return rd_bad(r, "STATE record at offset %llu: '%s' is not the state the index names", (ull)off,
			              s.name);
		rec->name = r->states[r->seq.states - 1].name;
	}
	rec->kind = BGSNAP_REC_STATE;
	rec->data = s.data;
	rec->len = s.len;
	return 0;
}

/* One record: 1, 2 for a PAD (checked, in the seen list, not returned),
 * or -errno. */
static int seq_one(bgsnap_reader *r, struct bgsnap_record *rec)
{
	uint32_t type, before;
	uint64_t len, off, toff;
	int rc = rd_seq_record(r, &type, &len, &off, &before);
	if (rc == 0)
		return rd_bad(r, "truncated: file ends at offset %llu, before the INDEX record", (ull)r->pos);
	if (rc < 0)
		return rc;
	memset(rec, 0, sizeof(*rec));
	rec->offset = off;
	struct run x = { .kind = type, .offset = off };
	switch (type) {
	case FMT_REC_PAGES:
	case FMT_REC_ZERO:
	case FMT_REC_CPAGES:
		rc = seq_run(r, type, len, off, &x, rec);
		break;
	case FMT_REC_STATE:
		rc = seq_state(r, len, off, &x, rec);
		break;
	case FMT_REC_PAD:
		/* Zero bytes only (rd_check_hdr allowed PAD in version 4 only):
		 * a PAD carries nothing, not even a hidden message. */
		for (uint64_t k = 0; k < len; k++)
			if (r->buf[k])
				return rd_bad(r, "PAD record at offset %llu: byte %llu is 0x%02x, must be 0", (ull)off, (ull)k,
				              r->buf[k]);
		x.count = len;
		break;
	case FMT_REC_INDEX:
		if ((rc = index_matches_seen(r, off, len)) < 0 || (rc = trailer_matches_seen(r, off, &toff)) < 0 ||
		    (rc = end_of_input(r, toff)) < 0)
			return rc;
		rec->kind = BGSNAP_REC_END;
		r->seq.state = 1;
		return 1;
	default:
		return rd_bad(r, "record at offset %llu: unexpected %s record", (ull)off, rd_type_name(type));
	}
	if (rc < 0)
		return rc;
	/* A file's records must match its index as they come, so verify names
	 * the first record that disagrees. */
	if (!r->stream && r->seq.nseen >= r->nindex)
		return rd_bad(r, "record at offset %llu (%s) is not in the index (%zu entries)", (ull)off,
		              rd_type_name(type), r->nindex);
	if (!r->stream && !same_run(&r->index[r->seq.nseen], &x))
		return entry_mismatch(r, r->seq.nseen, &r->index[r->seq.nseen], &x);
	if ((rc = seen_add(r, &x)) < 0)
		return rc;
	return type == FMT_REC_PAD ? 2 : 1;
}

/* Callers see no PAD record: the next one is what they get (a loop, not
 * recursion: a crafted stream may hold any number of PADs in a row). */
static int seq_next(bgsnap_reader *r, struct bgsnap_record *rec)
{
	int rc;
	while ((rc = seq_one(r, rec)) == 2)
		;
	return rc;
}

int bgsnap_reader_next(bgsnap_reader *r, struct bgsnap_record *rec)
{
	if (r->seq.state < 0)
		return r->seq.state;
	if (r->seq.state == 1)
		return 0;
	err_clear(&r->err);
	if (!r->stream && r->pos < r->header_end) {
		r->pos = r->header_end;
		r->file_crc = r->header_crc;
	}
	int rc = seq_next(r, rec);
	if (rc < 0)
		r->seq.state = rc;
	return rc;
}

int bgsnap_reader_rewind(bgsnap_reader *r)
{
	if (r->stream)
		return -ESPIPE;
	rd_seq_reset(r);
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

int reader_seq_started(const bgsnap_reader *r)
{
	return r->seq.nseen != 0 || r->seq.state != 0;
}

void rd_seq_reset(bgsnap_reader *r)
{
	rd_dec_free(&r->seq.dec);
	rd_cov_free(r);
	r->seq.zero = 0;
	r->seq.states = 0;
	r->seq.nseen = 0;
	r->seq.state = 0;
}
