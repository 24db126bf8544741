/*
 * reader_restore.c - restore's access to a file's index (reader.h): the
 * records in file order, one record's check, and its pages (decoded
 * into the calling thread's own buffer for CPAGES).  Reads nothing and changes
 * nothing in the reader, so restore's threads may share one.  A chain's
 * records are its links' in turn, oldest first, each with the pieces of it
 * that the chain's image keeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "format/crc32c.h"
#include "format/le.h"
#include "format/reader.h"
#include "format/reader_int.h"

size_t reader_run_count(const bgsnap_reader *r)
{
	if (r->stream)
		return 0;
	return r->nparents ? r->run_base[r->nparents + 1] : r->nindex;
}

/* Restore's entry i: its link and its place in that link's index. */
static const struct run *entry(const bgsnap_reader *r, size_t i, const bgsnap_reader **lp, size_t *kp)
{
	if (r->stream || i >= reader_run_count(r))
		return NULL;
	size_t k = 0;
	if (r->nparents) {
		size_t lo = 0, hi = r->nparents + 1;
		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;
			if (r->run_base[mid] <= i)
				lo = mid;
			else
				hi = mid;
		}
		k = lo;
		i -= r->run_base[k];
	}
	*lp = rd_link(r, k);
	if (kp)
		*kp = k;
	return &(*lp)->index[i];
}

int reader_run_get(const bgsnap_reader *r, size_t i, struct reader_run *out)
{
	const bgsnap_reader *l;
	size_t k;
	const struct run *x = entry(r, i, &l, &k);
	if (!x)
		return -ENOENT;
	*out = (struct reader_run){ x->kind, x->region, x->first, x->count, x->offset, x->span, l->fd, (uint32_t)k };
	return 0;
}

int reader_fd(const bgsnap_reader *r)
{
	return r->fd;
}

int reader_partial(const bgsnap_reader *r)
{
	return r->incremental && !r->nparents;
}

int reader_run_piece(const bgsnap_reader *r, const struct reader_run *x, uint64_t *from, uint64_t *first,
                     uint64_t *count)
{
	uint64_t end = x->first + x->count;
	if (*from < x->first)
		*from = x->first;
	if (!r->nparents) {
		if (*from >= end)
			return 0;
		*first = *from;
		*count = end - *from;
		*from = end;
		return 1;
	}
	while (*from < end) {
		const struct seg *s = rd_chain_seg(r, x->region, *from);
		if (!s)
			return 0;
		uint64_t se = s->first + s->count < end ? s->first + s->count : end;
		uint64_t at = *from;
		*from = se;
		if (s->link == x->link && s->run->offset == x->offset) {
			*first = at;
			*count = se - at;
			return 1;
		}
	}
	return 0;
}

int reader_run_check(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct bgsnap_err *err)
{
	const bgsnap_reader *l;
	const struct run *x = entry(r, i, &l, NULL);
	if (!x)
		return err_set(err, -ENOENT, "no index entry %zu", i);
	if (x->kind == FMT_REC_STATE)
		return 0;   /* checked at open */
	int rc = rd_check_run_head(x, rec, err);
	if (rc == 0) {
		uint64_t body = x->span - FMT_REC_CRC_LEN;
		rc = rd_check_run_crc(x, le32_load(rec + body), crc32c(0, rec, body), err);
	}
	if (rc < 0 && l != r) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		err_set(err, rc, "%s: %s", l->path, m);
	}
	return rc;
}

struct reader_dec {
	struct rd_dec d;
};

void reader_dec_free(struct reader_dec *d)
{
	if (!d)
		return;
	rd_dec_free(&d->d);
	free(d);
}

int reader_run_pages(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct reader_dec **dec,
                     const uint8_t **pages, struct bgsnap_err *err)
{
	*pages = NULL;
	int rc = reader_run_check(r, i, rec, err);
	if (rc < 0)
		return rc;
	const bgsnap_reader *l;
	const struct run *x = entry(r, i, &l, NULL);
	if (x->kind == FMT_REC_PAGES)
		*pages = rec + RD_HEAD_LEN;
	if (x->kind != FMT_REC_CPAGES)
		return 0;
	if (!*dec && !(*dec = calloc(1, sizeof(**dec))))
		return err_set(err, -ENOMEM, "out of memory");
	return rd_decode(&(*dec)->d, x, rec + RD_HEAD_LEN, x->span - RD_HEAD_LEN - FMT_REC_CRC_LEN, pages, err);
}

uint64_t reader_run_data_offset(void)
{
	return RD_HEAD_LEN;
}

int reader_run_check_split(const bgsnap_reader *r, size_t i, const uint8_t *rec, const uint8_t *pages,
                           struct bgsnap_err *err)
{
	const bgsnap_reader *l;
	const struct run *x = entry(r, i, &l, NULL);
	if (!x || x->kind != FMT_REC_PAGES)
		return err_set(err, -ENOENT, "no PAGES index entry %zu", i);
	int rc = rd_check_run_head(x, rec, err);
	if (rc == 0) {
		uint64_t body = x->span - FMT_REC_CRC_LEN, data = body - RD_HEAD_LEN;
		uint32_t crc = crc32c(crc32c(0, rec, RD_HEAD_LEN), pages, data);
		rc = rd_check_run_crc(x, le32_load(rec + body), crc, err);
	}
	if (rc < 0 && l != r) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		err_set(err, rc, "%s: %s", l->path, m);
	}
	return rc;
}

int reader_run_decode_to(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct reader_dec **dec, uint8_t *dst,
                         struct bgsnap_err *err)
{
	int rc = reader_run_check(r, i, rec, err);
	if (rc < 0)
		return rc;
	const bgsnap_reader *l;
	const struct run *x = entry(r, i, &l, NULL);
	if (x->kind != FMT_REC_CPAGES)
		return err_set(err, -ENOENT, "index entry %zu is not a CPAGES record", i);
	if (!*dec && !(*dec = calloc(1, sizeof(**dec))))
		return err_set(err, -ENOMEM, "out of memory");
	return rd_decode_into(&(*dec)->d, x, rec + RD_HEAD_LEN, x->span - RD_HEAD_LEN - FMT_REC_CRC_LEN, dst, err);
}

int reader_map_layout(const bgsnap_reader *r)
{
	return !r->stream && r->aligned && !r->nparents && !r->incremental;
}

int reader_run_check_parts(const bgsnap_reader *r, size_t i, const uint8_t *head, const uint8_t *pages,
                           const uint8_t *crcb, struct bgsnap_err *err)
{
	const bgsnap_reader *l;
	const struct run *x = entry(r, i, &l, NULL);
	if (!x || (x->kind != FMT_REC_PAGES && x->kind != FMT_REC_ZERO) || l != r)
		return err_set(err, -ENOENT, "no PAGES or ZERO index entry %zu", i);
	int rc = rd_check_run_head(x, head, err);
	if (rc < 0)
		return rc;
	uint32_t crc = crc32c(0, head, RD_HEAD_LEN);
	if (x->kind == FMT_REC_PAGES)
		crc = crc32c(crc, pages, x->count * r->page_size);
	return rd_check_run_crc(x, le32_load(crcb), crc, err);
}
