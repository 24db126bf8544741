/* image.c - regions of a snapshot as raw bytes in a file (see image.h). */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define RUN_PAGES 256u   /* pages gathered per pwrite */

int image_create(const char *path, uint64_t size, char *err, size_t err_len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		return cli_fail(err, err_len, -e, "%s: %s", path, strerror(e));
	}
	/* An existing file keeps its mode across O_TRUNC: make it private too. */
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return cli_fail(err, err_len, -e, "%s: %s", path, strerror(e));
	}
	return fd;
}

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

int image_write_region(bgsnap_reader *r, unsigned idx, uint64_t pages, uint32_t ps, int fd, uint64_t off,
                       struct image_stats *st, const char *path, char *err, size_t err_len)
{
	uint8_t *buf = malloc((size_t)RUN_PAGES * ps);
	if (!buf)
		return cli_fail(err, err_len, -ENOMEM, "out of memory");
	uint64_t run_first = 0, run_len = 0;
	int rc = 0;
	for (uint64_t p = 0; p < pages && rc == 0; p++) {
		uint8_t *dst = buf + run_len * ps;
		rc = bgsnap_reader_read_page(r, idx, p, dst);
		if (rc < 0) {
			rc = cli_fail(err, err_len, rc, "%s", bgsnap_reader_errmsg(r));
			break;
		}
		int z = is_zero(dst, ps);
		if (z) {
			st->zero_pages++;
		} else {
			if (!run_len)
				run_first = p;
			run_len++;
			st->data_pages++;
		}
		if (run_len && (z || run_len == RUN_PAGES || p + 1 == pages)) {
			rc = image_pwrite(fd, buf, (size_t)(run_len * ps), off + run_first * ps);
			if (rc < 0)
				rc = cli_fail(err, err_len, rc, "writing %s: %s", path, strerror(-rc));
			run_len = 0;
		}
	}
	free(buf);
	return rc;
}

int image_finish(int fd, const char *path, int rc, char *err, size_t err_len)
{
	/* fsync of a file on a file system without it (EINVAL) is no failure. */
	if (rc == 0 && fsync(fd) < 0 && errno != EINVAL) {
		int e = errno;
		rc = cli_fail(err, err_len, -e, "fsync %s: %s", path, strerror(e));
	}
	if (close(fd) < 0 && rc == 0) {
		int e = errno;
		rc = cli_fail(err, err_len, -e, "closing %s: %s", path, strerror(e));
	}
	if (rc < 0)
		unlink(path);
	return rc;
}
