/*
 * reader_restore.c - restore's access to a file's index (reader.h): the
 * records in file order, one record's check, and its pages (decoded
 * into the calling thread's own buffer for CPAGES).  Reads nothing and changes
 * nothing in the reader, so restore's threads may share one.
 */
#include <errno.h>
#include <stdlib.h>

#include "format/crc32c.h"
#include "format/le.h"
#include "format/reader.h"
#include "format/reader_int.h"

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
	int rc = rd_check_run_head(x, rec, err);
	if (rc < 0)
		return rc;
	uint64_t body = x->span - FMT_REC_CRC_LEN;
	return rd_check_run_crc(x, le32_load(rec + body), crc32c(0, rec, body), err);
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
	const struct run *x = &r->index[i];
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
	if (r->stream || i >= r->nindex || r->index[i].kind != FMT_REC_PAGES)
		return err_set(err, -ENOENT, "no PAGES index entry %zu", i);
	const struct run *x = &r->index[i];
	int rc = rd_check_run_head(x, rec, err);
	if (rc < 0)
		return rc;
	uint64_t body = x->span - FMT_REC_CRC_LEN, data = body - RD_HEAD_LEN;
	uint32_t crc = crc32c(crc32c(0, rec, RD_HEAD_LEN), pages, data);
	return rd_check_run_crc(x, le32_load(rec + body), crc, err);
}

int reader_run_decode_to(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct reader_dec **dec, uint8_t *dst,
                         struct bgsnap_err *err)
{
	int rc = reader_run_check(r, i, rec, err);
	if (rc < 0)
		return rc;
	const struct run *x = &r->index[i];
	if (x->kind != FMT_REC_CPAGES)
		return err_set(err, -ENOENT, "index entry %zu is not a CPAGES record", i);
	if (!*dec && !(*dec = calloc(1, sizeof(**dec))))
		return err_set(err, -ENOMEM, "out of memory");
	return rd_decode_into(&(*dec)->d, x, rec + RD_HEAD_LEN, x->span - RD_HEAD_LEN - FMT_REC_CRC_LEN, dst, err);
}
