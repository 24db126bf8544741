/*
 * merge.c - a reader's image written out as one full snapshot
 * (bgsnap_reader_write_full): what `bgsnap merge` does to flatten a chain.
 *
 * Every page goes through bgsnap_reader_read_page (the chain's image, each
 * record checked against its checksum before it is used) into a bounded
 * buffer, then through the encoder, which classifies zero pages and, with
 * a codec, compresses; the state blobs and the trailer's method, creation
 * time and pause time are the newest file's.  The output is a plain fd,
 * written front to back: committing it (fsync, rename) is the caller's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/format.h"
#include "format/reader_int.h"

#define MERGE_RUN 256u   /* pages per encoder call */

static int fd_writev(void *ctx, const struct iovec *iov, int iovcnt, struct bgsnap_err *err)
{
	int fd = *(int *)ctx;
	struct iovec v[IOV_MAX];
	memcpy(v, iov, (size_t)iovcnt * sizeof(*v));
	struct iovec *p = v;
	while (iovcnt > 0) {
		ssize_t n = writev(fd, p, iovcnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(err, -errno, "writing the merged snapshot");
		while (iovcnt > 0 && (size_t)n >= p->iov_len) {
			n -= (ssize_t)p->iov_len;
			p++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			p->iov_base = (char *)p->iov_base + n;
			p->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int fd_flush(void *ctx, struct bgsnap_err *err)
{
	(void)ctx;
	(void)err;
	return 0;
}

/* Region g of r's image through the encoder, MERGE_RUN pages at a time. */
static int merge_region(bgsnap_reader *r, struct fmt_writer *w, uint32_t g, uint8_t *buf, struct bgsnap_err *err)
{
	uint64_t pages = r->regions[g].pages;
	for (uint64_t p = 0; p < pages; p += MERGE_RUN) {
		uint64_t n = pages - p < MERGE_RUN ? pages - p : MERGE_RUN;
		for (uint64_t i = 0; i < n; i++) {
			int rc = bgsnap_reader_read_page(r, g, p + i, buf + i * FMT_PAGE_SIZE);
			if (rc < 0)
				return err_set(err, rc, "%s", r->err.msg[0] ? r->err.msg : "reading a page");
		}
		int rc = fmtw_pages(w, g, p, n, buf);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int bgsnap_reader_write_full(bgsnap_reader *r, int fd, int compress, char *errbuf, size_t err_len)
{
	struct bgsnap_err err = { 0, "" };
	int rc = 0;
	struct fmt_region *regs = NULL;
	uint8_t *buf = NULL;
	struct fmt_writer w;
	memset(&w, 0, sizeof(w));
	if (!r || fd < 0 || (compress != BGSNAP_COMPRESS_NONE && compress != BGSNAP_COMPRESS_ZSTD))
		rc = err_set(&err, -EINVAL, "write_full: no reader, no fd, or an unknown compression %d", compress);
	else if (r->stream || !r->have_trailer)
		rc = err_set(&err, -ESPIPE, "write_full needs a random-access reader (bgsnap_reader_open)");
	else if (!(regs = calloc(r->region_count, sizeof(*regs))) || !(buf = malloc(MERGE_RUN * FMT_PAGE_SIZE)))
		rc = err_set(&err, -ENOMEM, "out of memory");
	for (uint32_t g = 0; rc == 0 && g < r->region_count; g++)
		regs[g] = (struct fmt_region){ r->regions[g].name, r->regions[g].addr, r->regions[g].size };
	struct fmt_out out = { &fd, fd_writev, fd_flush, IOV_MAX, NULL };
	struct fmt_codec codec = { .method = compress == BGSNAP_COMPRESS_ZSTD ? FMT_COMPRESS_ZSTD : FMT_COMPRESS_NONE };
	if (rc == 0)
		rc = fmtw_begin_codec(&w, &out, regs, r->region_count, &codec, &err);
	for (uint32_t g = 0; rc == 0 && g < r->region_count; g++)
		rc = merge_region(r, &w, g, buf, &err);
	for (size_t i = 0; rc == 0 && i < r->nstates; i++)
		rc = fmtw_state(&w, r->states[i].name, r->states[i].data, r->states[i].len);
	struct fmt_meta meta = { (int)r->method, r->created_ns, r->pause_us };
	if (rc == 0)
		rc = fmtw_finish(&w, &meta);
	fmtw_free(&w);
	free(regs);
	free(buf);
	if (rc < 0 && errbuf && err_len)
		snprintf(errbuf, err_len, "%s", err.msg[0] ? err.msg : strerror(-rc));
	return rc < 0 ? rc : 0;
}
