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
	return 0;
}

void sink_open_fd(struct sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
}

int sink_writev(struct sink *s, const struct iovec *iov_in, int iovcnt, struct bgsnap_err *err)
{
	if (s->failed)
		return s->failed;
	struct iovec iov[SINK_IOV_MAX];
	if (iovcnt < 1 || iovcnt > SINK_IOV_MAX)
		return err_set(err, -EINVAL, "internal: sink_writev with %d iovecs", iovcnt);
	memcpy(iov, iov_in, sizeof(iov[0]) * (size_t)iovcnt);
	struct iovec *v = iov;
	int n = iovcnt;
	while (n > 0) {
		ssize_t w = writev(s->fd, v, n);
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
		size_t left = (size_t)w;
		while (n > 0 && left >= v->iov_len) {
			left -= v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + left;
			v->iov_len -= left;
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
	if (s->failed)
		return s->failed;
	if (!s->owns_fd) {
		struct stat st;
		if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode) && fdatasync(s->fd) < 0)
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
	int r = fsync_dir_of(s->final_path, err);
	free(s->final_path);
	s->final_path = NULL;
	s->owns_fd = 0;
	return r;
}

void sink_abort(struct sink *s)
{
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
