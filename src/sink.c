/*
 * sink.c - file and fd sinks (see sink.h).
 *
 * A path sink never exposes a partial file under the final name: bytes go to
 * "<dir>/.<name>.XXXXXX.tmp" (mode 0600) and only sink_commit() renames it,
 * after fsync, then fsyncs the directory so the rename itself is durable.
 * Any failure leaves the final name untouched and sink_abort() unlinks the
 * temporary.
 */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *d = strdup(dirname(copy));
	free(copy);
	return d;
}

/* Page-aligned, allocated at open: a fork child writes through the sink and
 * must not allocate. */
static int stage_alloc(struct sink *s, struct bgsnap_err *err)
{
	struct stat st;
	s->regular = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
	off_t pos = s->regular ? lseek(s->fd, 0, SEEK_CUR) : 0;
	s->wb_base = pos > 0 ? (uint64_t)pos : 0;
	s->stage = aligned_alloc(4096, SINK_STAGE_BYTES);
	if (!s->stage)
		return err_set(err, -ENOMEM, "out of memory for the %u-byte write buffer", SINK_STAGE_BYTES);
	return 0;
}

static void stage_free(struct sink *s)
{
	free(s->stage);
	s->stage = NULL;
	s->staged = 0;
}

int sink_open_path(struct sink *s, const char *path, struct bgsnap_err *err)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (!path || !*path)
		return err_set(err, -EINVAL, "empty snapshot path");
	size_t plen = strlen(path);
	if (path[plen - 1] == '/')
		return err_set(err, -EISDIR, "snapshot path '%s' names a directory", path);

	char *copy = strdup(path);
	if (!copy)
		return err_set(err, -ENOMEM, "out of memory");
	const char *base = basename(copy);
	char *dir = dir_of(path);
	size_t tlen = plen + 32;
	char *tmp = malloc(tlen);
	if (!dir || !tmp) {
		free(copy);
		free(dir);
		free(tmp);
		return err_set(err, -ENOMEM, "out of memory");
	}
	/* mkostemps creates the file 0600 whatever the umask says. */
	snprintf(tmp, tlen, "%s/.%s.XXXXXX.tmp", dir, base);
	free(copy);
	free(dir);
	int fd = mkostemps(tmp, 4, O_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		free(tmp);
		return err_sys(err, e, "cannot create a temporary file next to '%s'", path);
	}
	s->fd = fd;
	s->owns_fd = 1;
	s->tmp_path = tmp;
	s->final_path = strdup(path);
	if (!s->final_path) {
		sink_abort(s);
		return err_set(err, -ENOMEM, "out of memory");
	}
	int r = stage_alloc(s, err);
	if (r)
		sink_abort(s);
	return r;
}

int sink_open_fd(struct sink *s, int fd, struct bgsnap_err *err)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	return stage_alloc(s, err);
}

int sink_flush(struct sink *s, struct bgsnap_err *err)
{
	if (s->failed)
		return s->failed;
	const uint8_t *p = s->stage;
	size_t left = s->staged;
	while (left > 0) {
		ssize_t w = write(s->fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			s->failed = -errno;
			return err_sys(err, s->failed, "writing the snapshot at offset %llu",
			               (unsigned long long)s->offset);
		}
		if (w == 0) {
			s->failed = -EIO;
			return err_set(err, s->failed, "writing the snapshot at offset %llu: write returned 0",
			               (unsigned long long)s->offset);
		}
		s->offset += (uint64_t)w;
		p += w;
		left -= (size_t)w;
	}
	s->staged = 0;
	/* Advisory: an error here shows up again at the fsync, which reports it. */
	if (s->regular && s->offset - s->wb_offset >= SINK_WRITEBACK_BYTES) {
		sync_file_range(s->fd, (off64_t)(s->wb_base + s->wb_offset), (off64_t)(s->offset - s->wb_offset),
		                SYNC_FILE_RANGE_WRITE);
		s->wb_offset = s->offset;
	}
	return 0;
}

int sink_writev(struct sink *s, const struct iovec *iov, int iovcnt, struct bgsnap_err *err)
{
	if (s->failed)
		return s->failed;
	if (iovcnt < 1 || iovcnt > SINK_IOV_MAX || !s->stage)
		return err_set(err, -EINVAL, "internal: sink_writev with %d iovecs%s", iovcnt,
		               s->stage ? "" : " on a released sink");
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		while (len > 0) {
			size_t n = SINK_STAGE_BYTES - s->staged;
			if (n > len)
				n = len;
			memcpy(s->stage + s->staged, p, n);
			s->staged += n;
			p += n;
			len -= n;
			if (s->staged == SINK_STAGE_BYTES) {
				int r = sink_flush(s, err);
				if (r)
					return r;
			}
		}
	}
	return 0;
}

int sink_write(struct sink *s, const void *buf, size_t len, struct bgsnap_err *err)
{
	struct iovec v = { .iov_base = (void *)buf, .iov_len = len };
	return sink_writev(s, &v, 1, err);
}

static int fsync_dir_of(const char *path, struct bgsnap_err *err)
{
	char *dir = dir_of(path);
	if (!dir)
		return err_set(err, -ENOMEM, "out of memory");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;
	if (dfd < 0)
		r = err_sys(err, -errno, "cannot open directory '%s' to make the rename durable", dir);
	else if (fsync(dfd) < 0)
		r = err_sys(err, -errno, "fsync of directory '%s'", dir);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return r;
}

int sink_commit(struct sink *s, struct bgsnap_err *err)
{
	int r = sink_flush(s, err);
	stage_free(s);
	if (r) {
		sink_abort(s);
		return r;
	}
	if (!s->owns_fd) {
		if (s->regular && fdatasync(s->fd) < 0)
			return s->failed = err_sys(err, -errno, "fdatasync of the snapshot");
		return 0;
	}
	if (fsync(s->fd) < 0) {
		s->failed = err_sys(err, -errno, "fsync of '%s'", s->tmp_path);
		sink_abort(s);
		return s->failed;
	}
	if (close(s->fd) < 0) {
		s->fd = -1;
		s->failed = err_sys(err, -errno, "close of '%s'", s->tmp_path);
		sink_abort(s);
		return s->failed;
	}
	s->fd = -1;
	if (rename(s->tmp_path, s->final_path) < 0) {
		s->failed = err_sys(err, -errno, "cannot rename '%s' to '%s'", s->tmp_path, s->final_path);
		sink_abort(s);
		return s->failed;
	}
	free(s->tmp_path);
	s->tmp_path = NULL;
	r = fsync_dir_of(s->final_path, err);
	free(s->final_path);
	s->final_path = NULL;
	s->owns_fd = 0;
	return r;
}

void sink_abort(struct sink *s)
{
	stage_free(s);
	if (s->owns_fd && s->fd >= 0)
		close(s->fd);
	if (s->owns_fd)
		s->fd = -1;
	if (s->tmp_path) {
		unlink(s->tmp_path);
		free(s->tmp_path);
		s->tmp_path = NULL;
	}
	free(s->final_path);
	s->final_path = NULL;
	s->owns_fd = 0;
}
