/*
 * reader_restore.c - restore's access to a file's index (reader.h): the
 * records in file order, and one record's check.  Reads nothing and changes
 * nothing in the reader, so restore's threads may share one.
 */
#include <errno.h>

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
