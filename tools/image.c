/* image.c - regions of a snapshot as raw bytes in a file, run by run (see
 * image.h; the file itself is image_file.c's). */
#include "image.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h"

#define RUN_PAGES 256u   /* pages gathered per pwrite */

int image_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static int is_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && !memcmp(p, p + 1, n - 1);
}

/* Where the pages of a data run go. */
struct dest {
	int fd;
	uint64_t off;
	const char *path;
	uint8_t *buf;                /* RUN_PAGES pages */
};

/* Pages [from, to) of region idx, stored as data: each read through the
 * reader, the non-zero ones written in batches, zero ones left as holes. */
static int write_data_run(bgsnap_reader *r, unsigned idx, uint64_t from, uint64_t to, uint32_t ps,
                          const struct dest *d, struct image_stats *st, char *err, size_t err_len)
{
	uint64_t run_first = 0, run_len = 0;
	int rc = 0;
	for (uint64_t p = from; p < to && rc == 0; p++) {
		uint8_t *dst = d->buf + run_len * ps;
		rc = bgsnap_reader_read_page(r, idx, p, dst);
		if (rc < 0)
			return cli_fail(err, err_len, rc, "%s", bgsnap_reader_errmsg(r));
		int z = is_zero(dst, ps);
		if (z) {
			st->zero_pages++;
		} else {
			if (!run_len)
				run_first = p;
			run_len++;
			st->data_pages++;
		}
		if (run_len && (z || run_len == RUN_PAGES || p + 1 == to)) {
			rc = image_pwrite(d->fd, d->buf, (size_t)(run_len * ps), d->off + run_first * ps);
			if (st->bar)
				progress_update(st->bar, (st->data_pages + st->zero_pages) * ps);
			if (rc < 0)
				rc = cli_fail(err, err_len, rc, "writing %s: %s", d->path, strerror(-rc));
			run_len = 0;
		}
	}
	return rc;
}

int image_write_region(bgsnap_reader *r, unsigned idx, uint64_t pages, uint32_t ps, int fd, uint64_t off,
                       struct image_stats *st, const char *path, char *err, size_t err_len)
{
	struct dest d = { fd, off, path, malloc((size_t)RUN_PAGES * ps) };
	if (!d.buf)
		return cli_fail(err, err_len, -ENOMEM, "out of memory");
	int rc = 0;
	for (uint64_t p = 0; p < pages && rc == 0;) {
		struct bgsnap_record run;
		rc = bgsnap_reader_page_run(r, idx, p, &run);
		if (rc < 0) {
			const char *why = bgsnap_reader_errmsg(r);
			rc = cli_fail(err, err_len, rc, "page %" PRIu64 " of region %u: %s", p, idx, why[0] ? why : strerror(-rc));
			break;
		}
		/* The reader checked at open that runs tile the region. */
		uint64_t end = run.first_page + run.count;
		if (end > pages)
			end = pages;
		if (run.kind == BGSNAP_REC_ZERO)
			st->zero_pages += end - p;     /* one hole: the file was sized */
		else
			rc = write_data_run(r, idx, p, end, ps, &d, st, err, err_len);
		p = end;
		if (st->bar)
			progress_update(st->bar, (st->data_pages + st->zero_pages) * ps);
	}
	free(d.buf);
	return rc;
}
