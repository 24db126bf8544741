/*
 * reader_parse.c - the payloads both ways in parse the same: the magic and
 * HEADER (the region table), the TRAILER, and STATE records.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/crc32c.h"
#include "format/le.h"
#include "format/reader_int.h"

/* Region entry i of the table at p+*q (HEADER payload of `len` bytes at
 * file offset `off`): name, address, size, flags; advances *q. */
static int parse_region(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t *q, uint32_t i,
                        uint64_t off)
{
	struct rregion *g = &r->regions[i];
	uint64_t at = off + FMT_REC_HDR_LEN + *q;
	if (len - *q < 4)
		return rd_bad(r, "HEADER at offset %llu: region %u runs past the end of the header", (ull)off, i);
	uint32_t nl = le32_load(p + *q);
	if (nl < 1 || nl > FMT_NAME_MAX || len - *q - 4 < (uint64_t)nl + 20)
		return rd_bad(r, "HEADER: region %u at offset %llu: name length %u invalid or past the header", i,
		              (ull)at, nl);
	if (!fmt_name_valid((const char *)p + *q + 4, nl))
		return rd_bad(r, "HEADER: region %u at offset %llu: name is not printable ASCII", i, (ull)at);
	memcpy(g->name, p + *q + 4, nl);
	const uint8_t *f = p + *q + 4 + nl;
	*q += 4 + nl + 20;
	g->addr = le64_load(f);
	g->size = le64_load(f + 8);
	uint32_t fl = le32_load(f + 16);
	uint32_t ps = r->page_size;
	if (g->addr % ps || g->size % ps || !fmt_range_fits(g->addr, g->size))
		return rd_bad(r, "HEADER: region '%s' at offset %llu: address 0x%llx size %llu not page aligned, "
		              "empty or ending beyond 2^64", g->name, (ull)at, (ull)g->addr, (ull)g->size);
	if (fl)
		return rd_bad(r, "HEADER: region '%s' at offset %llu: flags 0x%x, must be 0", g->name, (ull)at, fl);
	g->pages = g->size / ps;
	return 0;
}

/* Region i against those before it: names unique, no overlap. */
static int region_distinct(bgsnap_reader *r, uint32_t i, uint64_t off)
{
	const struct rregion *g = &r->regions[i];
	for (uint32_t j = 0; j < i; j++) {
		const struct rregion *o = &r->regions[j];
		if (!strcmp(o->name, g->name))
			return rd_bad(r, "HEADER at offset %llu: two regions named '%s'", (ull)off, g->name);
		if (fmt_ranges_overlap(g->addr, g->size, o->addr, o->size))
			return rd_bad(r, "HEADER at offset %llu: regions '%s' and '%s' overlap", (ull)off, o->name,
			              g->name);
	}
	return 0;
}

/* The LINEAGE block of a version 3 HEADER (at p + FMT_HEADER_FIXED_LEN). */
static int parse_lineage(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t off)
{
	uint64_t at = off + FMT_REC_HDR_LEN + FMT_HEADER_FIXED_LEN;
	if (len < FMT_HEADER_FIXED_LEN + FMT_LINEAGE_LEN)
		return rd_bad(r, "HEADER at offset %llu: no room for its %u-byte LINEAGE block", (ull)off,
		              FMT_LINEAGE_LEN);
	const uint8_t *l = p + FMT_HEADER_FIXED_LEN;
	memcpy(r->id, l, FMT_ID_LEN);
	memcpy(r->parent_id, l + 16, FMT_ID_LEN);
	r->parent_file_crc = le32_load(l + 32);
	r->depth = le32_load(l + 36);
	r->has_lineage = 1;
	r->incremental = !fmt_id_zero(r->parent_id);
	if (fmt_id_zero(r->id))
		return rd_bad(r, "LINEAGE at offset %llu: id is all zero", (ull)at);
	if (!memcmp(r->id, r->parent_id, FMT_ID_LEN))
		return rd_bad(r, "LINEAGE at offset %llu: the file names itself as its parent", (ull)at);
	if (r->depth > FMT_MAX_DEPTH)
		return rd_bad(r, "LINEAGE at offset %llu: depth %u (max %u)", (ull)at, r->depth, FMT_MAX_DEPTH);
	if (!r->incremental && (r->depth || r->parent_file_crc))
		return rd_bad(r, "LINEAGE at offset %llu: no parent, yet depth %u and parent crc 0x%08x (both must be 0)",
		              (ull)at, r->depth, r->parent_file_crc);
	if (r->incremental && !r->depth)
		return rd_bad(r, "LINEAGE at offset %llu: a parent, yet depth 0", (ull)at);
	return 0;
}

static int parse_header(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t off)
{
	uint32_t version = le32_load(p), ps = le32_load(p + 4), n = le32_load(p + 8);
	if (version < FMT_VERSION || version > FMT_VERSION_ALIGNED)
		return rd_bad(r, "HEADER at offset %llu: unsupported format version %u (this reader knows 1 to %u)",
		              (ull)off, version, FMT_VERSION_ALIGNED);
	if (ps != FMT_PAGE_SIZE)
		return rd_bad(r, "HEADER at offset %llu: page size %u (versions 1 to 4 require %u)", (ull)off, ps, FMT_PAGE_SIZE);
	if (n < 1 || n > FMT_MAX_REGIONS)
		return rd_bad(r, "HEADER at offset %llu: %u regions (1..%u allowed)", (ull)off, n, FMT_MAX_REGIONS);
	uint32_t feat = le32_load(p + 12);
	if (version < FMT_VERSION_ALIGNED && feat)
		return rd_bad(r, "HEADER at offset %llu: reserved field is 0x%x, must be 0", (ull)off, feat);
	/* Version 4: `features` says the layout is aligned (always) and
	 * whether a LINEAGE block follows; an unknown bit is a layout this
	 * reader could misread. */
	if (version == FMT_VERSION_ALIGNED && (feat & ~(FMT_FEAT_ALIGNED | FMT_FEAT_LINEAGE) || !(feat & FMT_FEAT_ALIGNED)))
		return rd_bad(r, "HEADER at offset %llu: version 4 features 0x%x (bit 0 must be set, only bits 0 and 1 "
		              "are known)", (ull)off, feat);
	r->version = version;
	r->page_size = ps;
	r->aligned = version == FMT_VERSION_ALIGNED;
	uint64_t q = FMT_HEADER_FIXED_LEN, total = 0;
	if (version == FMT_VERSION_LINEAGE || (feat & FMT_FEAT_LINEAGE)) {
		int rc = parse_lineage(r, p, len, off);
		if (rc < 0)
			return rc;
		q += FMT_LINEAGE_LEN;
	}
	if (!(r->regions = calloc(n, sizeof(*r->regions))))
		return err_set(&r->err, -ENOMEM, "out of memory");
	r->region_count = n;
	for (uint32_t i = 0; i < n; i++) {
		int rc = parse_region(r, p, len, &q, i, off);
		if (rc < 0)
			return rc;
		r->regions[i].base = total;
		total += r->regions[i].pages;
		if (total > FMT_MAX_TOTAL_PAGES)
			return rd_bad(r, "HEADER at offset %llu: more than %llu pages in all regions", (ull)off,
			              (ull)FMT_MAX_TOTAL_PAGES);
		if ((rc = region_distinct(r, i, off)) < 0)
			return rc;
	}
	if (q != len)
		return rd_bad(r, "HEADER at offset %llu: %llu bytes after the region table", (ull)off, (ull)(len - q));
	r->pages_total = total;
	return 0;
}

int rd_read_head(bgsnap_reader *r)
{
	uint8_t m[FMT_MAGIC_LEN];
	ssize_t n = rd_src_read(r, m, sizeof(m));
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(m) || memcmp(m, FMT_MAGIC, FMT_MAGIC_LEN))
		return rd_bad(r, "not a bgsnap snapshot: bad magic at offset 0");
	r->file_crc = crc32c(0, m, sizeof(m));
	uint32_t before;
	uint64_t len, off;
	int rc = rd_seq_expect(r, FMT_REC_HEADER, "before the HEADER record", "", &len, &off, &before);
	if (rc == 0)
		rc = parse_header(r, r->buf, len, off);
	if (rc < 0)
		return rc;
	r->header_end = r->pos;
	r->header_crc = r->file_crc;
	return 0;
}

int rd_parse_trailer(bgsnap_reader *r, const uint8_t *p, uint64_t off)
{
	if (memcmp(p + 56, FMT_END_MAGIC, 8))
		return rd_bad(r, "TRAILER at offset %llu: bad end magic", (ull)off);
	if (le32_load(p + 52))
		return rd_bad(r, "TRAILER at offset %llu: reserved field is 0x%x, must be 0", (ull)off,
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
		return rd_bad(r, "TRAILER at offset %llu: %llu pages, the header's regions hold %llu", (ull)off,
		              (ull)total, (ull)r->pages_total);
	if (r->pages_zero > total)
		return rd_bad(r, "TRAILER at offset %llu: %llu zero pages of %llu", (ull)off, (ull)r->pages_zero,
		              (ull)total);
	if (r->state_count > FMT_MAX_STATES)
		return rd_bad(r, "TRAILER at offset %llu: %u state blobs (max %u)", (ull)off, r->state_count,
		              FMT_MAX_STATES);
	return 0;
}

int rd_parse_state(bgsnap_reader *r, const uint8_t *p, uint64_t len, uint64_t off, struct rstate *s)
{
	uint32_t nl = le32_load(p);
	if (nl < 1 || nl > FMT_NAME_MAX || len < 4 + (uint64_t)nl + 8)
		return rd_bad(r, "STATE record at offset %llu: name length %u invalid", (ull)off, nl);
	if (!fmt_name_valid((const char *)p + 4, nl))
		return rd_bad(r, "STATE record at offset %llu: name is not printable ASCII", (ull)off);
	uint64_t dl = le64_load(p + 4 + nl);
	if (dl != len - 4 - nl - 8)
		return rd_bad(r, "STATE record at offset %llu: data length %llu, the record holds %llu", (ull)off,
		              (ull)dl, (ull)(len - 4 - nl - 8));
	memset(s->name, 0, sizeof(s->name));
	memcpy(s->name, p + 4, nl);
	s->data = p + 4 + nl + 8;
	s->len = (size_t)dl;
	return 0;
}

int rd_add_state(bgsnap_reader *r, const struct rstate *s, uint64_t off)
{
	for (size_t i = 0; i < r->nstates; i++)
		if (!strcmp(r->states[i].name, s->name))
			return rd_bad(r, "STATE record at offset %llu: a second state named '%s'", (ull)off, s->name);
	if (r->nstates >= FMT_MAX_STATES)
		return rd_bad(r, "STATE record at offset %llu: more than %u state blobs", (ull)off, FMT_MAX_STATES);
	struct rstate *n = realloc(r->states, (r->nstates + 1) * sizeof(*n));
	if (!n)
		return err_set(&r->err, -ENOMEM, "out of memory");
	r->states = n;
	r->states[r->nstates++] = *s;
	return 0;
}
