/*
 * restore_stream.c - eager restore from a sequential reader
 * (bgsnap_restore_stream): records are taken in the order they arrive, the
 * index comes last, so there is nothing to plan, split among threads or
 * read in place.  Each record is checked by bgsnap_reader_next before its
 * pages are copied, and the restore is good only once END was read: the
 * index and trailer matched what came and every page was seen exactly once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "format/reader.h"
#include "restore/restore_int.h"
#include "util/err.h"

typedef unsigned long long ull;

/* Fresh private anonymous memory (nothing populated) reads as zero: its
 * ZERO runs need no write, which keeps a mostly-empty guest small. */
static int target_fresh(const struct rst_target *t)
{
	/* Whatever fails here only costs writing the zeros. */
	struct bgsnap_err ignore = { 0 };
	if (rst_private_anon(t->dst, t->pages * PAGE_SIZE_, &ignore) != 1)
		return 0;
	uint64_t first;
	int64_t n = rst_populated(t->dst, t->pages, &first, &ignore);
	return n == 0;
}

static int put_record(const struct bgsnap_record *rec, struct rst_target *t, struct bgsnap_err *err)
{
	/* The reader checked the run against the region, whose size the
	 * target equals; checked again so no file can make this write out. */
	if (rec->first_page > t->pages || rec->count > t->pages - rec->first_page)
		return err_set(err, -EBADMSG, "record at offset %llu: pages %llu+%llu outside region %u (%llu pages)",
		               (ull)rec->offset, (ull)rec->first_page, (ull)rec->count, rec->region, (ull)t->pages);
	uint8_t *dst = t->dst + rec->first_page * PAGE_SIZE_;
	size_t len = (size_t)(rec->count * PAGE_SIZE_);
	if (rec->kind == BGSNAP_REC_PAGES)
		memcpy(dst, rec->data, len);
	else if (!t->fresh)
		memset(dst, 0, len);
	return 0;
}

int bgsnap_restore_stream(bgsnap_reader *r, const struct bgsnap_restore_target *targets, unsigned n, char *err,
                          size_t err_len)
{
	struct bgsnap_err e = { 0 };
	struct rst_target *t = NULL;
	int *target_of = NULL;
	int rc;
	if (err && err_len)
		err[0] = '\0';
	if (!r) {
		rc = err_set(&e, -EINVAL, "no reader");
		goto out;
	}
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	if (fi.incremental) {
		rc = err_set(&e, -EINVAL, "the snapshot is incremental (it holds only the pages written since its "
		             "parent): restore its chain from files");
		goto out;
	}
	/* A random-access reader of a lone file goes through its records
	 * once, as a stream would; a stream must be at its first record. */
	rc = bgsnap_reader_rewind(r);
	if (rc == -ESPIPE && reader_seq_started(r)) {
		rc = err_set(&e, -EINVAL, "the stream's first records were already read: nothing to restore from");
		goto out;
	}
	if ((rc = rst_check_targets(r, targets, n, &t, &e)) < 0)
		goto out;
	if (!(target_of = malloc(fi.region_count * sizeof(*target_of)))) {
		rc = err_set(&e, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < fi.region_count; i++)
		target_of[i] = -1;
	for (unsigned i = 0; i < n; i++) {
		target_of[t[i].region] = (int)i;
		t[i].fresh = target_fresh(&t[i]);
	}
	struct bgsnap_record rec;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0) {
		if (rec.kind == BGSNAP_REC_END)
			break;
		if ((rec.kind != BGSNAP_REC_PAGES && rec.kind != BGSNAP_REC_ZERO) || rec.region >= fi.region_count ||
		    target_of[rec.region] < 0)
			continue;
		if ((rc = put_record(&rec, &t[target_of[rec.region]], &e)) < 0)
			goto out;
	}
	if (rc < 0) {
		const char *m = bgsnap_reader_errmsg(r);
		err_set(&e, rc, "%s", m && m[0] ? m : strerror(-rc));
		goto out;
	}
	if (rc == 0) {
		/* next() returns 0 only after END was returned once. */
		rc = err_set(&e, -EINVAL, "the stream had already ended");
		goto out;
	}
	rc = 0;
	for (unsigned i = 0; i < n; i++)
		if (rst_thp_target(t[i].dst, t[i].pages * PAGE_SIZE_))
			rst_thp_collapse(t[i].dst, t[i].pages * PAGE_SIZE_);
out:
	free(t);
	free(target_of);
	if (rc < 0 && err && err_len)
		snprintf(err, err_len, "%s", e.msg[0] ? e.msg : strerror(-rc));
	return rc < 0 ? rc : 0;
}
