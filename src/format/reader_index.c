/*
 * reader_index.c - the INDEX of a file, read at open once the trailer is
 * known: every entry checked (kind, contiguous offsets, spans, bounds), the
 * per-region run tables built and sorted, and each region tiled exactly
 * once by its runs.  From then on the index fixes the file's layout.
 */
#include <errno.h>
#include <stdlib.h>

#include "format/le.h"
#include "format/reader_int.h"

/* Sums over the entries, checked against the trailer at the end. */
struct tally {
	uint64_t zero, expect_off;
	uint32_t states;
};

static int cmp_run(const void *a, const void *b)
{
	const struct run *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

static uint64_t min_span(uint32_t kind)
{
	return kind == FMT_REC_STATE ? FMT_REC_HDR_LEN + 4 + 1 + 8 + FMT_REC_CRC_LEN
	     : kind == FMT_REC_PAD   ? FMT_REC_HDR_LEN + FMT_REC_CRC_LEN
	                             : RD_HEAD_LEN + FMT_REC_CRC_LEN;
}

/* A PAD entry: count is its payload length, which fixes its span. */
static int pad_entry(bgsnap_reader *r, uint64_t i, const struct run *x)
{
	if (x->region || x->first || x->count > FMT_MAX_PAD || x->span != min_span(FMT_REC_PAD) + x->count)
		return rd_bad(r, "INDEX entry %llu: PAD at offset %llu: fields inconsistent with its %llu-byte record "
		              "(at most %u zero bytes)", (ull)i, (ull)x->offset, (ull)x->span, FMT_MAX_PAD);
	return 0;
}

static int state_entry(bgsnap_reader *r, uint64_t i, const struct run *x, struct tally *t)
{
	if (x->region || x->first || x->count > FMT_MAX_STATE_LEN || x->span - min_span(FMT_REC_STATE) < x->count ||
	    x->span - min_span(FMT_REC_STATE) - x->count > FMT_NAME_MAX - 1)
		return rd_bad(r, "INDEX entry %llu: STATE at offset %llu: fields inconsistent with its %llu-byte record",
		              (ull)i, (ull)x->offset, (ull)x->span);
	if (++t->states > FMT_MAX_STATES)
		return rd_bad(r, "INDEX: more than %u STATE records", FMT_MAX_STATES);
	return 0;
}

static int pages_entry(bgsnap_reader *r, uint64_t i, const struct run *x, struct tally *t)
{
	if (x->region >= r->region_count)
		return rd_bad(r, "INDEX entry %llu: region %u does not exist (%u regions)", (ull)i, x->region,
		              r->region_count);
	struct rregion *g = &r->regions[x->region];
	uint64_t maxc = x->kind == FMT_REC_PAGES ? FMT_MAX_READ_RUN_PAGES
	              : x->kind == FMT_REC_CPAGES ? FMT_MAX_CPAGES : FMT_MAX_ZERO_RUN;
	if (x->count < 1 || x->count > maxc || x->first > g->pages || x->count > g->pages - x->first)
		return rd_bad(r, "INDEX entry %llu: %s record at offset %llu: pages %llu+%llu outside region '%s' "
		              "(%llu pages) or more than %llu in one record", (ull)i, rd_type_name(x->kind),
		              (ull)x->offset, (ull)x->first, (ull)x->count, g->name, (ull)g->pages, (ull)maxc);
	uint64_t want = x->kind != FMT_REC_ZERO ? RD_HEAD_LEN + x->count * r->page_size + FMT_REC_CRC_LEN
	                                         : RD_HEAD_LEN + FMT_REC_CRC_LEN;
	if (x->kind == FMT_REC_CPAGES) {
		/* A frame of 1 .. count*page_size-1 bytes. */
		if (x->span <= RD_HEAD_LEN + FMT_REC_CRC_LEN || x->span >= want)
			return rd_bad(r, "INDEX entry %llu: CPAGES record at offset %llu spans %llu bytes: its frame must "
			              "be 1 byte or more and smaller than its %llu raw pages", (ull)i, (ull)x->offset,
			              (ull)x->span, (ull)x->count);
	} else if (x->span != want) {
		return rd_bad(r, "INDEX entry %llu: %s record at offset %llu spans %llu bytes, %llu expected", (ull)i,
		              rd_type_name(x->kind), (ull)x->offset, (ull)x->span, (ull)want);
	}
	/* The promise of version 4 that restore by mapping relies on (checked
	 * again there before any mmap). */
	if (x->kind == FMT_REC_PAGES && r->aligned && (x->offset + RD_HEAD_LEN) % r->page_size)
		return rd_bad(r, "INDEX entry %llu: PAGES record at offset %llu: its data at offset %llu is not "
		              "page-aligned (format version 4 requires it)", (ull)i, (ull)x->offset,
		              (ull)(x->offset + RD_HEAD_LEN));
	if (x->kind != FMT_REC_ZERO)
		r->stored_bytes += x->span;
	if (x->kind == FMT_REC_ZERO) {
		t->zero += x->count;
		g->zero_pages += x->count;
	}
	g->nruns++;
	return 0;
}

/* Entry i at `e` into r->index[i]; `next` is the following record's offset
 * (the INDEX's after the last entry), which fixes this record's span. */
static int index_entry(bgsnap_reader *r, uint64_t i, const uint8_t *e, uint64_t next, struct tally *t)
{
	struct run *x = &r->index[i];
	x->kind = le32_load(e);
	x->region = le32_load(e + 4);
	x->first = le64_load(e + 8);
	x->count = le64_load(e + 16);
	x->offset = le64_load(e + 24);
	if (x->kind == FMT_REC_CPAGES && r->version < FMT_VERSION_CPAGES)
		return rd_bad(r, "INDEX entry %llu: record at offset %llu is CPAGES (type 7, compressed pages), an "
		              "unsupported encoding in format v1", (ull)i, (ull)x->offset);
	if (x->kind != FMT_REC_PAGES && x->kind != FMT_REC_ZERO && x->kind != FMT_REC_STATE &&
	    x->kind != FMT_REC_CPAGES && (x->kind != FMT_REC_PAD || !r->aligned))
		return rd_bad(r, "INDEX entry %llu: kind %u is not PAGES, ZERO, CPAGES or STATE%s", (ull)i, x->kind,
		              r->aligned ? " or PAD" : "");
	if (x->offset != t->expect_off || next < x->offset || next - x->offset < min_span(x->kind))
		return rd_bad(r, "INDEX entry %llu: record offset %llu, expected %llu (records are contiguous, next at "
		              "%llu)", (ull)i, (ull)x->offset, (ull)t->expect_off, (ull)next);
	x->span = next - x->offset;
	t->expect_off = next;
	return x->kind == FMT_REC_STATE ? state_entry(r, i, x, t)
	     : x->kind == FMT_REC_PAD   ? pad_entry(r, i, x)
	                                : pages_entry(r, i, x, t);
}

/* Each region's runs, sorted by first page, must tile it exactly once; an
 * incremental file's cover each page at most once (the rest are its
 * parent's). */
static int build_run_tables(bgsnap_reader *r)
{
	for (uint32_t g = 0; g < r->region_count; g++) {
		r->regions[g].runs = calloc(r->regions[g].nruns + 1, sizeof(struct run));
		if (!r->regions[g].runs)
			return err_set(&r->err, -ENOMEM, "out of memory");
		r->regions[g].nruns = 0;
	}
	for (size_t i = 0; i < r->nindex; i++)
		if (r->index[i].kind != FMT_REC_STATE && r->index[i].kind != FMT_REC_PAD) {
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
				return rd_bad(r, "INDEX: page %llu of region '%s' is in two records (offsets %llu and %llu)",
				              (ull)x->first, g->name, (ull)g->runs[k - 1].offset, (ull)x->offset);
			if (x->first > next && !r->incremental)
				return rd_bad(r, "INDEX: pages %llu..%llu of region '%s' are in no record", (ull)next,
				              (ull)(x->first - 1), g->name);
			next = x->first + x->count;
		}
		if (next != g->pages && !r->incremental)
			return rd_bad(r, "INDEX: pages %llu..%llu of region '%s' are in no record", (ull)next,
			              (ull)(g->pages - 1), g->name);
	}
	return 0;
}

/* The INDEX record between the last record and the TRAILER, read and its
 * entries parsed; the record buffer is freed before returning. */
static int read_entries(bgsnap_reader *r, struct tally *t)
{
	uint64_t toff = r->file_size - FMT_TRAILER_REC_LEN, io = r->index_offset;
	uint8_t *ib = NULL;
	size_t icap = 0;
	int rc = rd_load_record(r, io, toff - io, FMT_REC_INDEX, &ib, &icap);
	uint64_t plen = toff - io - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN;
	uint64_t n = rc < 0 ? 0 : le64_load(ib + FMT_REC_HDR_LEN);
	if (rc == 0 && n != (plen - 8) / FMT_INDEX_ENTRY_LEN)
		rc = rd_bad(r, "INDEX at offset %llu: entry count %llu, its length holds %llu", (ull)io, (ull)n,
		            (ull)((plen - 8) / FMT_INDEX_ENTRY_LEN));
	if (rc == 0 && !(r->index = calloc(n ? n : 1, sizeof(*r->index))))
		rc = err_set(&r->err, -ENOMEM, "out of memory for the index (%llu entries)", (ull)n);
	if (rc == 0) {
		r->nindex = n;
		const uint8_t *e = ib + FMT_REC_HDR_LEN + 8;
		for (uint64_t i = 0; i < n && rc == 0; i++, e += FMT_INDEX_ENTRY_LEN)
			rc = index_entry(r, i, e, i + 1 < n ? le64_load(e + FMT_INDEX_ENTRY_LEN + 24) : io, t);
	}
	free(ib);
	return rc;
}

int rd_load_index(bgsnap_reader *r)
{
	uint64_t toff = r->file_size - FMT_TRAILER_REC_LEN, io = r->index_offset;
	if (io < r->header_end || io > toff || toff - io < RD_MIN_INDEX_REC)
		return rd_bad(r, "TRAILER at offset %llu: index offset %llu is not between the header (ends at %llu) "
		              "and the trailer", (ull)toff, (ull)io, (ull)r->header_end);
	struct tally t = { .expect_off = r->header_end };
	int rc = read_entries(r, &t);
	if (rc < 0)
		return rc;
	if (r->nindex == 0 && t.expect_off != io)
		return rd_bad(r, "INDEX at offset %llu: no entries, but records lie between %llu and %llu", (ull)io,
		              (ull)r->header_end, (ull)io);
	if ((rc = build_run_tables(r)) < 0)
		return rc;
	/* After the tiling check: a duplicate or missing page is the clearer
	 * diagnosis when the counts disagree too. */
	if (t.zero != r->pages_zero)
		return rd_bad(r, "TRAILER: %llu zero pages, the index has %llu", (ull)r->pages_zero, (ull)t.zero);
	if (t.states != r->state_count)
		return rd_bad(r, "TRAILER: %u state blobs, the index has %u", r->state_count, t.states);
	return 0;
}
