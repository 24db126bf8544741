/*
 * format_write.c - the snapshot encoder (format versions 1 to 4, docs/FORMAT.md).
 *
 * Owns: record framing, the whole-file crc32c (kept in the write path: each
 * record's crc is computed once and folded into the file crc with
 * crc32c_combine, so page data is checksummed once), the index, and the
 * exactly-once page bitmap that refuses to finish a file the reader would
 * reject.  Page data goes to the output (struct fmt_out) as iovecs into the
 * caller's memory, which the output has written or copied by the time it
 * returns; up to BATCH_RECS records of one fmtw_pages call share one writev.
 * With a codec (fmtw_begin_codec) non-zero pages take format_chunk.c's
 * path, which comes back here for the records themselves.  With a lineage
 * (fmtw_begin_lineage) the header is version 3; an incremental file may
 * leave pages out, still at most once each.  Aligned (codec->aligned) the
 * header is version 4 and a PAD record goes before each PAGES record
 * whose data would not start at a multiple of the page size: the output
 * is still written front to back, and bytes_written is the offset that
 * the alignment is computed from (a file written from its offset 0).
 * Invariant: w->bytes_written is the file offset of the next record, counting
 * records queued in the batch.
 */
#include "format/format.h"
#include "format/format_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "format/crc32c.h"
#include "format/le.h"

#define BATCH_RECS 64
#define HEAD_LEN   (FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN)

/* shift_ops[k]: crc32c_shift_op for a PAGES/ZERO record of k pages (head
 * and data), so folding a record into the file crc is one multiplication. */
static uint32_t shift_ops[FMT_MAX_RUN_PAGES + 1];
static pthread_once_t ops_once = PTHREAD_ONCE_INIT;

static void init_ops(void)
{
	for (unsigned k = 0; k <= FMT_MAX_RUN_PAGES; k++)
		shift_ops[k] = crc32c_shift_op(HEAD_LEN + (uint64_t)k * FMT_PAGE_SIZE);
}

struct fmt_index_entry {
	uint32_t kind, region;
	uint64_t first, count, offset;
};

struct fmt_batch {
	unsigned nrec, niov;
	uint8_t head[BATCH_RECS][HEAD_LEN];
	uint8_t crc[BATCH_RECS][FMT_REC_CRC_LEN];
	struct iovec iov[BATCH_RECS * 3];
};

static int fail(struct fmt_writer *w, int code)
{
	if (!w->failed)
		w->failed = code;
	return code;
}

static int index_add(struct fmt_writer *w, uint32_t kind, uint32_t region, uint64_t first,
                     uint64_t count, uint64_t offset)
{
	if (w->index_len == w->index_cap) {
		size_t cap = w->index_cap ? w->index_cap * 2 : 1024;
		struct fmt_index_entry *n = realloc(w->index, cap * sizeof(*n));
		if (!n)
			return fail(w, err_set(w->err, -ENOMEM, "format: out of memory for the index"));
		w->index = n;
		w->index_cap = cap;
	}
	w->index[w->index_len++] = (struct fmt_index_entry){ kind, region, first, count, offset };
	return 0;
}

static void put_rec_hdr(uint8_t *p, uint32_t type, uint64_t payload_len)
{
	le32_store(p, type);
	le32_store(p + 4, 0);
	le64_store(p + 8, payload_len);
}

/* Writes one whole buffer (magic, header, index, trailer) and folds it into the file crc. */
static int write_buf(struct fmt_writer *w, const void *buf, size_t len)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };
	int rc = w->out.writev(w->out.ctx, &v, 1, w->err);
	if (rc < 0)
		return fail(w, rc);
	w->file_crc = crc32c(w->file_crc, buf, len);
	w->bytes_written += len;
	return 0;
}

static int batch_flush(struct fmt_writer *w)
{
	struct fmt_batch *b = w->batch;
	if (!b->niov)
		return 0;
	int rc = w->out.writev(w->out.ctx, b->iov, (int)b->niov, w->err);
	b->nrec = b->niov = 0;
	return rc < 0 ? fail(w, rc) : 0;
}

static void iov_add(struct fmt_batch *b, const void *p, size_t len)
{
	b->iov[b->niov++] = (struct iovec){ .iov_base = (void *)p, .iov_len = len };
}

static const uint8_t zeros[FMT_MAX_PAD];

/* Queues a PAD record of `n` zero bytes (room for it checked by the caller). */
static int queue_pad(struct fmt_writer *w, uint64_t n)
{
	struct fmt_batch *b = w->batch;
	uint8_t *h = b->head[b->nrec], *c = b->crc[b->nrec];
	put_rec_hdr(h, FMT_REC_PAD, n);
	uint32_t rc = crc32c(crc32c(0, h, FMT_REC_HDR_LEN), zeros, n);
	le32_store(c, rc);
	w->file_crc = crc32c(crc32c_combine(w->file_crc, rc, FMT_REC_HDR_LEN + n), c, FMT_REC_CRC_LEN);
	iov_add(b, h, FMT_REC_HDR_LEN);
	if (n)
		iov_add(b, zeros, n);
	iov_add(b, c, FMT_REC_CRC_LEN);
	b->nrec++;
	int e = index_add(w, FMT_REC_PAD, 0, 0, n, w->bytes_written);
	w->bytes_written += FMT_REC_HDR_LEN + n + FMT_REC_CRC_LEN;
	return e;
}

/* Queues one PAGES (data != NULL) or ZERO record; aligned, a PAGES record
 * after the PAD record that aligns its data. */
static int queue_run(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count,
                     const void *data)
{
	struct fmt_batch *b = w->batch;
	int64_t pad = w->aligned && data ? fmt_pad_before_pages(w->bytes_written) : -1;
	unsigned recs = pad >= 0 ? 2 : 1;
	if ((b->nrec + recs > BATCH_RECS || b->niov + 3 * recs > (unsigned)w->out.iov_max) && batch_flush(w) < 0)
		return w->failed;
	if (pad >= 0 && queue_pad(w, (uint64_t)pad) < 0)
		return w->failed;
	uint32_t type = data ? FMT_REC_PAGES : FMT_REC_ZERO;
	uint64_t dlen = data ? count * FMT_PAGE_SIZE : 0;
	uint8_t *h = b->head[b->nrec], *c = b->crc[b->nrec];
	put_rec_hdr(h, type, FMT_RUN_PREFIX_LEN + dlen);
	le32_store(h + 16, region);
	le32_store(h + 20, 0);
	le64_store(h + 24, first);
	le64_store(h + 32, count);
	uint32_t rc = crc32c(0, h, HEAD_LEN);
	if (data)
		rc = crc32c(rc, data, dlen);
	le32_store(c, rc);
	w->file_crc = crc32c(crc32c_combine_op(w->file_crc, rc, shift_ops[data ? count : 0]), c, 4);
	iov_add(b, h, HEAD_LEN);
	if (data)
		iov_add(b, data, dlen);
	iov_add(b, c, FMT_REC_CRC_LEN);
	b->nrec++;
	int e = index_add(w, type, region, first, count, w->bytes_written);
	if (e < 0)
		return e;
	w->bytes_written += HEAD_LEN + dlen + FMT_REC_CRC_LEN;
	if (!data)
		w->pages_zero += count;
	return 0;
}

int fw_write_raw(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data)
{
	int rc = fw_queue_raw(w, region, first, count, data);
	return rc < 0 ? rc : batch_flush(w);
}

int fw_queue_raw(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data)
{
	const uint8_t *d = data;
	for (uint64_t p = 0; p < count; p += FMT_MAX_RUN_PAGES) {
		uint64_t k = count - p < FMT_MAX_RUN_PAGES ? count - p : FMT_MAX_RUN_PAGES;
		int rc = queue_run(w, region, first + p, k, d + p * FMT_PAGE_SIZE);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int fw_write_cpages(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *frame,
                    size_t clen)
{
	if (batch_flush(w) < 0)
		return w->failed;
	uint8_t h[HEAD_LEN], c[FMT_REC_CRC_LEN];
	put_rec_hdr(h, FMT_REC_CPAGES, FMT_RUN_PREFIX_LEN + clen);
	le32_store(h + 16, region);
	le32_store(h + 20, FMT_CODEC_ZSTD);
	le64_store(h + 24, first);
	le64_store(h + 32, count);
	uint32_t rc = crc32c(crc32c(0, h, HEAD_LEN), frame, clen);
	le32_store(c, rc);
	struct iovec iov[3] = { { h, HEAD_LEN }, { (void *)frame, clen }, { c, FMT_REC_CRC_LEN } };
	int e = w->out.writev(w->out.ctx, iov, 3, w->err);
	if (e < 0)
		return fail(w, e);
	w->file_crc = crc32c(crc32c_combine(w->file_crc, rc, HEAD_LEN + clen), c, FMT_REC_CRC_LEN);
	if ((e = index_add(w, FMT_REC_CPAGES, region, first, count, w->bytes_written)) < 0)
		return e;
	w->bytes_written += HEAD_LEN + clen + FMT_REC_CRC_LEN;
	return 0;
}

/* All-zero test: data pages almost always fail on the first word; zero
 * pages are OR-accumulated 256 bytes at a time (a loop the compiler turns
 * into vector ORs), with one branch per block. */
static int page_is_zero(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	if (v)
		return 0;
	for (size_t off = 0; off < FMT_PAGE_SIZE; off += 256) {
		uint64_t acc = 0;
		for (size_t i = 0; i < 256; i += 8) {
			memcpy(&v, p + off + i, 8);
			acc |= v;
		}
		if (acc)
			return 0;
	}
	return 1;
}

/* The region table against the format's rules; its HEADER payload length
 * and page count into *hlen and *total. */
static int check_regions(struct fmt_writer *w, const struct fmt_region *regions, uint32_t region_count,
                         size_t *hlen, uint64_t *total)
{
	struct bgsnap_err *err = w->err;
	if (region_count < 1 || region_count > FMT_MAX_REGIONS)
		return fail(w, err_set(err, -EINVAL, "format: %u regions (1..%u allowed)", region_count,
		                       FMT_MAX_REGIONS));
	*hlen = FMT_HEADER_FIXED_LEN;
	*total = 0;
	for (uint32_t i = 0; i < region_count; i++) {
		const struct fmt_region *r = &regions[i];
		size_t nl = r->name ? strnlen(r->name, FMT_NAME_MAX + 1) : 0;
		if (!fmt_name_valid(r->name ? r->name : "", nl))
			return fail(w, err_set(err, -EINVAL, "format: region %u: name must be 1..%u printable "
			                       "ASCII characters", i, FMT_NAME_MAX));
		if (r->addr % FMT_PAGE_SIZE || r->size % FMT_PAGE_SIZE || !fmt_range_fits(r->addr, r->size))
			return fail(w, err_set(err, -EINVAL, "format: region '%s': address 0x%llx size %llu not "
			                       "page aligned, empty or ending beyond 2^64", r->name,
			                       (unsigned long long)r->addr, (unsigned long long)r->size));
		for (uint32_t j = 0; j < i; j++) {
			const struct fmt_region *o = &regions[j];
			if (!strcmp(o->name, r->name))
				return fail(w, err_set(err, -EINVAL, "format: duplicate region name '%s'", r->name));
			if (fmt_ranges_overlap(r->addr, r->size, o->addr, o->size))
				return fail(w, err_set(err, -EINVAL, "format: regions '%s' and '%s' overlap",
				                       o->name, r->name));
		}
		*total += r->size / FMT_PAGE_SIZE;
		if (*total > FMT_MAX_TOTAL_PAGES)
			return fail(w, err_set(err, -EINVAL, "format: more than %llu pages in all regions",
			                       (unsigned long long)FMT_MAX_TOTAL_PAGES));
		*hlen += FMT_REGION_FIXED_LEN + nl;
	}
	return 0;
}

/* The magic and the HEADER record (payload `hlen` bytes) into buf; fills
 * the per-region page counts and bases. */
static void put_header(struct fmt_writer *w, uint8_t *buf, size_t hlen, const struct fmt_region *regions,
                       const struct fmt_lineage *lin)
{
	uint64_t base = 0;
	memcpy(buf, FMT_MAGIC, FMT_MAGIC_LEN);
	uint8_t *h = buf + FMT_MAGIC_LEN;
	put_rec_hdr(h, FMT_REC_HEADER, hlen);
	uint8_t *p = h + FMT_REC_HDR_LEN;
	le32_store(p, w->aligned ? FMT_VERSION_ALIGNED : lin ? FMT_VERSION_LINEAGE : w->cz ? FMT_VERSION_CPAGES
	                                                                               : FMT_VERSION);
	le32_store(p + 4, FMT_PAGE_SIZE);
	le32_store(p + 8, w->region_count);
	le32_store(p + 12, w->aligned ? FMT_FEAT_ALIGNED | (lin ? FMT_FEAT_LINEAGE : 0) : 0);
	p += FMT_HEADER_FIXED_LEN;
	if (lin) {
		memcpy(p, lin->id, FMT_ID_LEN);
		memcpy(p + 16, lin->parent_id, FMT_ID_LEN);
		le32_store(p + 32, lin->parent_file_crc);
		le32_store(p + 36, lin->depth);
		p += FMT_LINEAGE_LEN;
	}
	for (uint32_t i = 0; i < w->region_count; i++) {
		const struct fmt_region *r = &regions[i];
		uint32_t nl = (uint32_t)strlen(r->name);
		le32_store(p, nl);
		memcpy(p + 4, r->name, nl);
		p += 4 + nl;
		le64_store(p, r->addr);
		le64_store(p + 8, r->size);
		le32_store(p + 16, 0);
		p += 20;
		w->region_pages[i] = r->size / FMT_PAGE_SIZE;
		w->region_base[i] = base;
		base += w->region_pages[i];
	}
	le32_store(p, crc32c(0, h, FMT_REC_HDR_LEN + hlen));
}

int fmtw_begin(struct fmt_writer *w, const struct fmt_out *out, const struct fmt_region *regions,
               uint32_t region_count, struct bgsnap_err *err)
{
	return fmtw_begin_codec(w, out, regions, region_count, NULL, err);
}

int fmtw_begin_codec(struct fmt_writer *w, const struct fmt_out *out, const struct fmt_region *regions,
                     uint32_t region_count, const struct fmt_codec *codec, struct bgsnap_err *err)
{
	return fmtw_begin_lineage(w, out, regions, region_count, codec, NULL, err);
}

/* The lineage against the format's rules (docs/FORMAT.md, LINEAGE). */
static int check_lineage(struct fmt_writer *w, const struct fmt_lineage *lin)
{
	int full = fmt_id_zero(lin->parent_id);
	if (fmt_id_zero(lin->id))
		return fail(w, err_set(w->err, -EINVAL, "format: lineage id is all zero"));
	if (lin->depth > FMT_MAX_DEPTH)
		return fail(w, err_set(w->err, -EINVAL, "format: lineage depth %u (max %u)", lin->depth,
		                       FMT_MAX_DEPTH));
	if (full && (lin->depth || lin->parent_file_crc))
		return fail(w, err_set(w->err, -EINVAL, "format: a full snapshot's lineage has depth %u and "
		                       "parent crc 0x%08x (both must be 0)", lin->depth, lin->parent_file_crc));
	if (!full && !lin->depth)
		return fail(w, err_set(w->err, -EINVAL, "format: an incremental snapshot's lineage has depth 0"));
	if (!memcmp(lin->id, lin->parent_id, FMT_ID_LEN))
		return fail(w, err_set(w->err, -EINVAL, "format: lineage names itself as its parent"));
	return 0;
}

int fmtw_begin_lineage(struct fmt_writer *w, const struct fmt_out *out, const struct fmt_region *regions,
                       uint32_t region_count, const struct fmt_codec *codec, const struct fmt_lineage *lin,
                       struct bgsnap_err *err)
{
	memset(w, 0, sizeof(*w));
	pthread_once(&ops_once, init_ops);
	w->out = *out;
	w->err = err;
	if (!out->writev || !out->flush || out->iov_max < 3)
		return fail(w, err_set(err, -EINVAL, "format: output without writev or flush, or iov_max %d < 3",
		                       out->iov_max));
	size_t hlen = 0;
	uint64_t total = 0;
	int rc = check_regions(w, regions, region_count, &hlen, &total);
	if (rc < 0)
		return rc;
	if (lin) {
		if ((rc = check_lineage(w, lin)) < 0)
			return rc;
		hlen += FMT_LINEAGE_LEN;
		w->has_lineage = 1;
		w->incremental = !fmt_id_zero(lin->parent_id);
	}
	if (codec && codec->method != FMT_COMPRESS_NONE && (rc = fwc_new(w, codec)) < 0)
		return fail(w, rc);
	w->aligned = codec && codec->aligned;
	if (w->aligned && out->iov_max < 6)
		return fail(w, err_set(err, -EINVAL, "format: an aligned file needs iov_max >= 6 (PAD and PAGES "
		                       "in one writev), not %d", out->iov_max));
	w->region_count = region_count;
	w->pages_total = total;
	w->region_pages = calloc(region_count, sizeof(uint64_t));
	w->region_base = calloc(region_count, sizeof(uint64_t));
	w->seen = calloc(total / 64 + 1, sizeof(uint64_t));
	w->batch = calloc(1, sizeof(*w->batch));
	size_t buflen = FMT_MAGIC_LEN + FMT_REC_HDR_LEN + hlen + FMT_REC_CRC_LEN;
	uint8_t *buf = malloc(buflen);
	if (!w->region_pages || !w->region_base || !w->seen || !w->batch || !buf) {
		free(buf);
		return fail(w, err_set(err, -ENOMEM, "format: out of memory"));
	}
	put_header(w, buf, hlen, regions, lin);
	rc = write_buf(w, buf, buflen);
	free(buf);
	/* Out now: a stream reader can name the regions at once, and nothing
	 * stays staged that a fork child (which inherits the output) would write
	 * a second time. */
	if (!rc && (rc = w->out.flush(w->out.ctx, w->err)) < 0)
		fail(w, rc);
	return rc;
}

/* Marks [first, first+count) of region seen; refuses a page seen before. */
static int mark_seen(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count)
{
	uint64_t b = w->region_base[region] + first, e = b + count;
	for (uint64_t i = b; i < e; i++)
		if (w->seen[i / 64] >> (i % 64) & 1)
			return fail(w, err_set(w->err, -EINVAL, "format: page %llu of region %u written twice",
			                       (unsigned long long)(i - w->region_base[region]), region));
	for (uint64_t i = b; i < e;) {
		if (i % 64 == 0 && e - i >= 64) {
			w->seen[i / 64] = ~UINT64_C(0);
			i += 64;
		} else {
			w->seen[i / 64] |= UINT64_C(1) << (i % 64);
			i++;
		}
	}
	return 0;
}

int fmtw_pages(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count,
               const void *data)
{
	if (w->failed)
		return w->failed;
	if (region >= w->region_count || !count || first > w->region_pages[region] ||
	    count > w->region_pages[region] - first)
		return fail(w, err_set(w->err, -EINVAL, "format: pages %llu+%llu outside region %u",
		                       (unsigned long long)first, (unsigned long long)count, region));
	int rc = mark_seen(w, region, first, count);
	if (rc < 0)
		return rc;
	w->pages_written += count;
	const uint8_t *d = data;
	uint64_t p = 0;
	int z = page_is_zero(d);
	while (p < count) {
		uint64_t cap = z ? FMT_MAX_ZERO_RUN : FMT_MAX_RUN_PAGES;
		uint64_t q = p + 1;
		int zq = z;
		while (q < count && q - p < cap) {
			zq = page_is_zero(d + q * FMT_PAGE_SIZE);
			if (zq != z)
				break;
			q++;
		}
		if (w->cz && !z)
			rc = fwc_add(w, region, first + p, q - p, d + p * FMT_PAGE_SIZE);
		else
			rc = queue_run(w, region, first + p, q - p, z ? NULL : d + p * FMT_PAGE_SIZE);
		if (rc < 0)
			return rc;
		/* When the run ended on its cap, page q has not been classified. */
		if (q < count && q - p >= cap && zq == z)
			zq = page_is_zero(d + q * FMT_PAGE_SIZE);
		p = q;
		z = zq;
	}
	return batch_flush(w);
}

int fmtw_page_list(struct fmt_writer *w, const struct fmt_page_ref *refs, size_t n)
{
	if (w->failed)
		return w->failed;
	for (size_t i = 0; i < n; i++) {
		const struct fmt_page_ref *r = &refs[i];
		if (r->region >= w->region_count || r->page >= w->region_pages[r->region])
			return fail(w, err_set(w->err, -EINVAL, "format: page %llu outside region %u",
			                       (unsigned long long)r->page, r->region));
		int rc = mark_seen(w, r->region, r->page, 1);
		if (rc < 0)
			return rc;
		w->pages_written++;
		int z = page_is_zero(r->data);
		rc = w->cz && !z ? fwc_page(w, r->region, r->page, r->data) : queue_run(w, r->region, r->page, 1, z ? NULL : r->data);
		if (rc < 0)
			return rc;
	}
	return batch_flush(w);
}

static int grow_state_names(struct fmt_writer *w, size_t cap)
{
	if (cap <= w->state_cap)
		return 0;
	void *n = realloc(w->state_names, cap * sizeof(*w->state_names));
	if (!n)
		return fail(w, err_set(w->err, -ENOMEM, "format: out of memory"));
	w->state_names = n;
	w->state_cap = cap;
	return 0;
}

int fmtw_state(struct fmt_writer *w, const char *name, const void *data, size_t len)
{
	if (w->failed)
		return w->failed;
	size_t nl = name ? strnlen(name, FMT_NAME_MAX + 1) : 0;
	if (!fmt_name_valid(name ? name : "", nl))
		return fail(w, err_set(w->err, -EINVAL, "format: state name must be 1..%u printable ASCII "
		                       "characters", FMT_NAME_MAX));
	if (len > FMT_MAX_STATE_LEN)
		return fail(w, err_set(w->err, -EINVAL, "format: state '%s' is %zu bytes (max %llu)", name,
		                       len, (unsigned long long)FMT_MAX_STATE_LEN));
	if (w->state_count >= FMT_MAX_STATES)
		return fail(w, err_set(w->err, -EINVAL, "format: more than %u state blobs", FMT_MAX_STATES));
	for (uint64_t i = 0; i < w->state_count; i++)
		if (!strcmp(w->state_names[i], name))
			return fail(w, err_set(w->err, -EINVAL, "format: duplicate state name '%s'", name));
	if (w->state_count == w->state_cap && grow_state_names(w, w->state_cap ? w->state_cap * 2 : 8) < 0)
		return w->failed;
	memcpy(w->state_names[w->state_count], name, nl);
	w->state_names[w->state_count][nl] = '\0';
	w->state_count++;

	uint8_t head[FMT_REC_HDR_LEN + 4 + FMT_NAME_MAX + 8], crcb[4];
	uint64_t plen = 4 + nl + 8 + len;
	put_rec_hdr(head, FMT_REC_STATE, plen);
	le32_store(head + 16, (uint32_t)nl);
	memcpy(head + 20, name, nl);
	le64_store(head + 20 + nl, len);
	size_t hl = 20 + nl + 8;
	uint32_t rc = crc32c(crc32c(0, head, hl), data, len);
	le32_store(crcb, rc);
	struct iovec iov[3] = { { head, hl }, { (void *)data, len }, { crcb, 4 } };
	int e = w->out.writev(w->out.ctx, iov, 3, w->err);
	if (e < 0)
		return fail(w, e);
	w->file_crc = crc32c(crc32c_combine(w->file_crc, rc, hl + len), crcb, 4);
	e = index_add(w, FMT_REC_STATE, 0, 0, len, w->bytes_written);
	w->bytes_written += hl + len + 4;
	return e;
}

int fmtw_reserve(struct fmt_writer *w, size_t records, size_t states)
{
	if (w->failed)
		return w->failed;
	if (records > w->index_cap) {
		struct fmt_index_entry *n = realloc(w->index, records * sizeof(*n));
		if (!n)
			return fail(w, err_set(w->err, -ENOMEM, "format: out of memory for the index"));
		w->index = n;
		w->index_cap = records;
	}
	return grow_state_names(w, states);
}

int fmtw_finish(struct fmt_writer *w, const struct fmt_meta *meta)
{
	if (w->failed)
		return w->failed;
	int rc = fwc_flush(w);
	if (rc < 0)
		return rc;
	if (w->pages_written != w->pages_total && !w->incremental) {
		uint64_t i = 0;
		while (w->seen[i / 64] >> (i % 64) & 1)
			i++;
		uint32_t r = 0;
		while (r + 1 < w->region_count && w->region_base[r + 1] <= i)
			r++;
		return fail(w, err_set(w->err, -EINVAL, "format: %llu of %llu pages never written "
		                       "(first: page %llu of region %u)",
		                       (unsigned long long)(w->pages_total - w->pages_written),
		                       (unsigned long long)w->pages_total,
		                       (unsigned long long)(i - w->region_base[r]), r));
	}
	/* The index is streamed through a small buffer: no allocation here,
	 * so a fork child (which must not malloc) can finish a file too. */
	uint64_t index_offset = w->bytes_written;
	uint64_t plen = 8 + (uint64_t)w->index_len * FMT_INDEX_ENTRY_LEN;
	uint8_t buf[512 * FMT_INDEX_ENTRY_LEN];
	put_rec_hdr(buf, FMT_REC_INDEX, plen);
	le64_store(buf + 16, w->index_len);
	size_t used = 24;
	uint32_t crc = 0;
	for (size_t i = 0; i <= w->index_len; i++) {
		if (i == w->index_len || used + FMT_INDEX_ENTRY_LEN > sizeof(buf)) {
			crc = crc32c(crc, buf, used);
			rc = write_buf(w, buf, used);
			if (rc < 0)
				return rc;
			used = 0;
			if (i == w->index_len)
				break;
		}
		const struct fmt_index_entry *e = &w->index[i];
		uint8_t *p = buf + used;
		le32_store(p, e->kind);
		le32_store(p + 4, e->region);
		le64_store(p + 8, e->first);
		le64_store(p + 16, e->count);
		le64_store(p + 24, e->offset);
		used += FMT_INDEX_ENTRY_LEN;
	}
	uint8_t crcb[FMT_REC_CRC_LEN];
	le32_store(crcb, crc);
	rc = write_buf(w, crcb, sizeof(crcb));
	if (rc < 0)
		return rc;

	uint8_t t[FMT_TRAILER_REC_LEN];
	put_rec_hdr(t, FMT_REC_TRAILER, FMT_TRAILER_LEN);
	uint8_t *q = t + FMT_REC_HDR_LEN;
	le64_store(q, index_offset);
	le64_store(q + 8, w->pages_total);
	le64_store(q + 16, w->pages_zero);
	le32_store(q + 24, (uint32_t)w->state_count);
	le32_store(q + 28, meta ? (uint32_t)meta->method : 0);
	le64_store(q + 32, meta ? meta->created_unix_ns : 0);
	le64_store(q + 40, meta ? meta->pause_us : 0);
	uint32_t file_crc = w->file_crc;
	le32_store(q + 48, file_crc);
	le32_store(q + 52, 0);
	memcpy(q + 56, FMT_END_MAGIC, 8);
	le32_store(t + FMT_REC_HDR_LEN + FMT_TRAILER_LEN, crc32c(0, t, FMT_REC_HDR_LEN + FMT_TRAILER_LEN));
	if ((rc = write_buf(w, t, sizeof(t))) < 0)
		return rc;
	/* What the trailer says, not the crc of the trailer itself: a child
	 * names its parent by it. */
	w->file_crc = file_crc;
	/* The file is complete only once the staged tail is out. */
	return (rc = w->out.flush(w->out.ctx, w->err)) < 0 ? fail(w, rc) : 0;
}

void fmtw_free(struct fmt_writer *w)
{
	fwc_free(w);
	free(w->region_pages);
	free(w->region_base);
	free(w->seen);
	free(w->batch);
	free(w->index);
	free(w->state_names);
	w->region_pages = w->region_base = w->seen = NULL;
	w->batch = NULL;
	w->index = NULL;
	w->state_names = NULL;
	w->state_count = w->state_cap = 0;
}
