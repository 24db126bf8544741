/*
 * reader_open.c - opening a snapshot both ways (a file: header, the trailer
 * at its end, index and states, all checked before open returns, then an
 * incremental file's chain; a stream: the header only), the states of a
 * file, and close.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/le.h"
#include "format/reader_int.h"

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
			return rd_bad(r, "truncated: file ends at offset %llu after a complete record; the %s missing",
			              (ull)sz, "INDEX and TRAILER are");
		if (sz - off < FMT_REC_HDR_LEN)
			return rd_bad(r, "truncated: file ends at offset %llu inside the header of a record starting "
			              "at offset %llu", (ull)sz, (ull)off);
		int rc = rd_pread_exact(r, h, sizeof(h), off, "a record header");
		if (rc < 0)
			return rc;
		if ((rc = rd_check_hdr(r, h, off)) < 0)
			return rc;
		uint32_t type = le32_load(h);
		uint64_t span = le64_load(h + 8) + FMT_REC_HDR_LEN + FMT_REC_CRC_LEN;
		if (span > sz - off)
			return rd_bad(r, "truncated: file ends at offset %llu inside %s record starting at offset %llu "
			              "(%llu bytes long)", (ull)sz, rd_type_name(type), (ull)off, (ull)span);
		if (type == FMT_REC_TRAILER && off + span < sz)
			return rd_bad(r, "%llu bytes of trailing data after the TRAILER record at offset %llu",
			              (ull)(sz - off - span), (ull)off);
		if (off + span == sz && type == FMT_REC_TRAILER)
			return rd_bad(r, "%s", saved);
		if (off + span == sz)
			return rd_bad(r, "truncated: file ends at offset %llu after the %s record at offset %llu; the "
			              "INDEX and TRAILER are missing", (ull)sz, rd_type_name(type), (ull)off);
		off += span;
	}
}

/* The TRAILER in the last bytes of a file, judged in a scratch error so
 * that, when it is not valid, diagnose_end can say more than the trailer
 * alone could. */
static int read_trailer(bgsnap_reader *r)
{
	uint64_t sz = r->file_size;
	if (sz - r->header_end < RD_MIN_INDEX_REC + FMT_TRAILER_REC_LEN)
		return diagnose_end(r, "file too short for an INDEX and a TRAILER");
	uint64_t toff = sz - FMT_TRAILER_REC_LEN;
	uint8_t t[FMT_TRAILER_REC_LEN];
	int rc = rd_pread_exact(r, t, sizeof(t), toff, "the TRAILER");
	if (rc < 0)
		return rc;
	struct bgsnap_err keep = r->err;
	err_clear(&r->err);
	rc = rd_check_hdr(r, t, toff);
	if (rc == 0 && le32_load(t) != FMT_REC_TRAILER)
		rc = rd_bad(r, "no TRAILER record at offset %llu (last %u bytes of the file)", (ull)toff,
		            FMT_TRAILER_REC_LEN);
	if (rc == 0)
		rc = rd_check_crc(r, t, t + FMT_REC_HDR_LEN, FMT_TRAILER_LEN, t + FMT_REC_HDR_LEN + FMT_TRAILER_LEN,
		                  toff, NULL);
	if (rc == 0)
		rc = rd_parse_trailer(r, t + FMT_REC_HDR_LEN, toff);
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
		int rc = rd_load_record(r, x->offset, x->span, FMT_REC_STATE, &b, &cap);
		struct rstate s = { .block = b };
		if (rc == 0)
			rc = rd_parse_state(r, b + FMT_REC_HDR_LEN, x->span - FMT_REC_HDR_LEN - FMT_REC_CRC_LEN, x->offset, &s);
		if (rc == 0 && s.len != x->count)
			rc = rd_bad(r, "STATE record at offset %llu: %zu bytes, the index says %llu", (ull)x->offset, s.len,
			            (ull)x->count);
		if (rc == 0)
			rc = rd_add_state(r, &s, x->offset);
		if (rc < 0) {
			free(b);
			return rc;
		}
	}
	return 0;
}

static int open_random(bgsnap_reader *r)
{
	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return err_sys(&r->err, -errno, "fstat");
	if (!S_ISREG(st.st_mode))
		return err_set(&r->err, -ESPIPE, "not a regular file: read it as a stream");
	r->file_size = (uint64_t)st.st_size;
	int rc = rd_read_head(r);
	if (rc == 0)
		rc = read_trailer(r);
	if (rc == 0)
		rc = rd_load_index(r);
	if (rc == 0)
		rc = load_states(r);
	return rc;
}

static bgsnap_reader *reader_new(char *err, size_t err_len)
{
	bgsnap_reader *r = calloc(1, sizeof(*r));
	if (!r) {
		if (err && err_len)
			snprintf(err, err_len, "out of memory");
		return NULL;
	}
	r->fd = -1;
	return r;
}

/* Hands out an opened reader, or frees a failed one with its message in
 * `err`. */
static int open_done(bgsnap_reader **out, bgsnap_reader *r, int rc, char *err, size_t err_len)
{
	if (rc < 0) {
		if (err && err_len)
			snprintf(err, err_len, "%s", r->err.msg[0] ? r->err.msg : "failed to open snapshot");
		bgsnap_reader_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

int rd_open_one(bgsnap_reader **out, const char *path, struct bgsnap_err *err)
{
	*out = NULL;
	bgsnap_reader *r = reader_new(NULL, 0);
	if (!r)
		return err_set(err, -ENOMEM, "out of memory");
	int rc;
	if (!(r->path = strdup(path)))
		rc = err_set(&r->err, -ENOMEM, "out of memory");
	else if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		rc = err_sys(&r->err, -errno, "%s", path);
	else {
		r->owns_fd = 1;
		rc = open_random(r);
	}
	if (rc < 0) {
		*err = r->err;
		if (!err->code)
			err_set(err, rc, "failed to open %s", path);
		bgsnap_reader_close(r);
		return rc;
	}
	*out = r;
	return 0;
}

static int open_fail(int rc, const struct bgsnap_err *e, char *err, size_t err_len)
{
	if (err && err_len)
		snprintf(err, err_len, "%s", e->msg[0] ? e->msg : "failed to open snapshot");
	return rc;
}

int bgsnap_reader_open(bgsnap_reader **out, const char *path, char *err, size_t err_len)
{
	*out = NULL;
	struct bgsnap_err e = { 0, "" };
	bgsnap_reader *r;
	int rc = rd_open_one(&r, path, &e);
	if (rc < 0)
		return open_fail(rc, &e, err, err_len);
	return open_done(out, r, rd_chain_find(r), err, err_len);
}

int bgsnap_reader_open_chain(bgsnap_reader **out, const char *const *paths, unsigned n, char *err, size_t err_len)
{
	*out = NULL;
	struct bgsnap_err e = { 0, "" };
	if (!paths || n < 1 || n > FMT_MAX_DEPTH + 1u)
		return open_fail(err_set(&e, -EINVAL, "a chain is 1 to %u files, not %u", FMT_MAX_DEPTH + 1u, n), &e,
		                 err, err_len);
	bgsnap_reader **links = calloc(n, sizeof(*links));
	if (!links)
		return open_fail(err_set(&e, -ENOMEM, "out of memory"), &e, err, err_len);
	int rc = 0;
	for (unsigned i = 0; i < n && rc == 0; i++)
		rc = rd_open_one(&links[i], paths[i], &e);
	if (rc < 0) {
		for (unsigned i = 0; i < n; i++)
			bgsnap_reader_close(links[i]);
		free(links);
		return open_fail(rc, &e, err, err_len);
	}
	bgsnap_reader *r = links[n - 1];
	rc = rd_chain_adopt(r, links, n - 1);   /* takes links[0..n-1) */
	free(links);
	return open_done(out, r, rc, err, err_len);
}

int bgsnap_reader_open_stream(bgsnap_reader **out, int fd, char *err, size_t err_len)
{
	*out = NULL;
	bgsnap_reader *r = reader_new(err, err_len);
	if (!r)
		return -ENOMEM;
	r->fd = fd;
	r->stream = 1;
	return open_done(out, r, rd_read_head(r), err, err_len);
}

void bgsnap_reader_close(bgsnap_reader *r)
{
	if (!r)
		return;
	rd_seq_reset(r);
	rd_chain_free(r);
	free(r->path);
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
	free(r->cache.buf);
	rd_dec_free(&r->cache.dec);
	free(r->seq.seen);
	free(r->buf);
	free(r);
}

const char *bgsnap_reader_errmsg(const bgsnap_reader *r)
{
	return r ? r->err.msg : "no reader";
}
