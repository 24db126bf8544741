/*
 * sink.c - file and fd sinks (see sink.h).
 *
 * A path sink never exposes a partial file under the final name.  Its bytes
 * go to an unnamed file (O_TMPFILE, mode 0600) in the final directory, which
 * sink_commit() fsyncs and then links under the final name (or, when that
 * name exists, under a hidden temporary name renamed over it), and fsyncs
 * the directory so the name itself is durable.  An unnamed file vanishes
 * with its last descriptor, so a host killed in the middle of a snapshot
 * leaves nothing behind.  Where the file system or a missing /proc rules
 * that out, the file is "<dir>/.<name>.XXXXXX.tmp" from the start, which
 * sink_abort() unlinks but a killed host leaves.
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
#include <time.h>
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
 * must not allocate.  A direct sink gets SINK_STAGES of them. */
static int stage_alloc(struct sink *s, struct bgsnap_err *err)
{
	struct stat st;
	s->regular = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
	off_t pos = s->regular && !s->owns_fd ? lseek(s->fd, 0, SEEK_CUR) : 0;
	s->wb_base = pos > 0 ? (uint64_t)pos : 0;
	unsigned n = s->dfd >= 0 ? SINK_STAGES : 1;
	s->stage = s->stages = aligned_alloc(4096, (size_t)n * SINK_STAGE_BYTES);
	s->skew = 0;
	if (!s->stage)
		return err_set(err, -ENOMEM, "out of memory for the %u-byte write buffer", n * SINK_STAGE_BYTES);
	return 0;
}

static void stage_free(struct sink *s)
{
	/* The thread's pending writes read the stages: they end first. */
	sink_aio_stop(s->aio);
	s->aio = NULL;
	free(s->stages);
	s->stage = s->stages = NULL;
	s->staged = 0;
}

static void close_direct(struct sink *s)
{
	if (s->dfd >= 0)
		close(s->dfd);
	s->dfd = -1;
}

/* The magic link that names an open descriptor, for reopening and linking
 * an unnamed file without CAP_DAC_READ_SEARCH (which AT_EMPTY_PATH needs). */
static void fd_link_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* "<dir>/.<name>.XXXXXX.tmp" for the final path, in *out (malloc'd). */
static int tmp_name(const struct sink *s, char **out)
{
	char *copy = strdup(s->final_path), *dir = dir_of(s->final_path);
	size_t len = 2 * strlen(s->final_path) + 32;
	char *t = malloc(len);
	if (copy && dir && t)
		snprintf(t, len, "%s/.%s.XXXXXX.tmp", dir, basename(copy));
	free(copy);
	free(dir);
	if (!copy || !dir) {
		free(t);
		t = NULL;
	}
	*out = t;
	return t ? 0 : -ENOMEM;
}

/* An unnamed file in `dir`, or -1 where there can be none: a kernel or file
 * system without O_TMPFILE, or no /proc to link it by at commit (checked
 * now, so that a commit never finds it cannot name the file). */
static int open_unnamed(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	char lp[40];
	fd_link_path(lp, sizeof(lp), fd);
	struct stat a, b;
	/* O_TMPFILE applies the umask, which may leave less than 0600. */
	if (fstat(fd, &a) < 0 || stat(lp, &b) < 0 || !same_inode(&a, &b) || fchmod(fd, 0600) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int sink_open_path(struct sink *s, const char *path, int direct, struct bgsnap_err *err)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->dfd = -1;
	if (!path || !*path)
		return err_set(err, -EINVAL, "empty snapshot path");
	size_t plen = strlen(path);
	struct stat st;
	if (path[plen - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
		return err_set(err, -EISDIR, "snapshot path '%s' names a directory", path);
	s->final_path = strdup(path);
	char *dir = dir_of(path);
	if (!s->final_path || !dir) {
		free(dir);
		sink_abort(s);
		return err_set(err, -ENOMEM, "out of memory");
	}
	int fd = open_unnamed(dir);
	free(dir);
	if (fd < 0) {
		/* mkostemps creates the file 0600 whatever the umask says. */
		int r = tmp_name(s, &s->tmp_path);
		fd = r ? -1 : mkostemps(s->tmp_path, 4, O_CLOEXEC);
		if (fd < 0) {
			r = r ? r : -errno;
			free(s->tmp_path);   /* not ours to unlink */
			s->tmp_path = NULL;
			sink_abort(s);
			return r == -ENOMEM ? err_set(err, r, "out of memory")
			                    : err_sys(err, r, "cannot create a temporary file next to '%s'", path);
		}
	}
	s->fd = fd;
	s->owns_fd = 1;
	/* Where the file system refuses O_DIRECT (EINVAL), the page cache it
	 * is.  Opened by name, so make sure it is the file we created (a
	 * relative path and a chdir meanwhile, or a replaced name). */
	if (direct) {
		char lp[40];
		fd_link_path(lp, sizeof(lp), fd);
		const char *name = s->tmp_path ? s->tmp_path : lp;
		s->dfd = open(name, O_WRONLY | O_DIRECT | O_CLOEXEC);
		struct stat a, b;
		if (s->dfd >= 0 && (fstat(fd, &a) < 0 || fstat(s->dfd, &b) < 0 || !same_inode(&a, &b))) {
			close(s->dfd);
			s->dfd = -1;
		}
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
	s->dfd = -1;
	return stage_alloc(s, err);
}

static int write_failed(struct sink *s, int code, uint64_t at, struct bgsnap_err *err)
{
	s->failed = code;
	return err_sys(err, code, "writing the snapshot at offset %llu", (unsigned long long)at);
}

/* Writes [p, p+len) at the sink's offset and advances it.  A path sink
 * writes at explicit offsets (it may hold two descriptors of the file); an
 * fd sink appends with write(2) (pipes, sockets). */
static int put_out(struct sink *s, const uint8_t *p, size_t len, int dfd, struct bgsnap_err *err)
{
	if (s->owns_fd) {
		uint64_t at = 0;
		int r = sink_pwrite_all(s->fd, dfd, p, len, s->offset, &at);
		if (r)
			return write_failed(s, r, at, err);
		s->offset += len;
		return 0;
	}
	while (len > 0) {
		ssize_t w = write(s->fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0) {
			s->failed = -EIO;
			return err_set(err, -EIO, "writing the snapshot at offset %llu: write returned 0",
			               (unsigned long long)s->offset);
		}
		if (w < 0)
			return write_failed(s, -errno, s->offset, err);
		s->offset += (uint64_t)w;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* A full stage to the thread.  The stage mirrors the file offset, so a full
 * one ends aligned: its unaligned head (after a flush) goes through the
 * page cache here, the rest to the thread, and the next stage starts
 * aligned and empty. */
static int hand_off_stage(struct sink *s, struct bgsnap_err *err)
{
	uint8_t *p = s->stage + s->skew;
	size_t head = s->skew ? SINK_ALIGN - s->skew : 0;
	int r = head ? put_out(s, p, head, -1, err) : 0;
	if (r)
		return r;
	uint64_t at = 0;
	r = sink_aio_submit(s->aio, p + head, s->staged - head, s->offset, &at);
	s->offset += s->staged - head;
	/* The next stage in the ring is free once at most SINK_STAGES - 1
	 * writes are pending: the one before it is done. */
	if (!r)
		r = sink_aio_wait(s->aio, SINK_STAGES - 1, &at);
	if (r)
		return write_failed(s, r, at, err);
	size_t next = ((size_t)(s->stage - s->stages) / SINK_STAGE_BYTES + 1) % SINK_STAGES;
	s->stage = s->stages + next * SINK_STAGE_BYTES;
	s->staged = 0;
	s->skew = 0;
	return 0;
}

/* Writes what is staged; `all` unset: the stage is full.  Without a thread
 * a direct sink writes a full stage here: head through the page cache,
 * the rest direct (sink_pwrite_all splits it). */
static int flush_stage(struct sink *s, int all, struct bgsnap_err *err)
{
	if (s->failed)
		return s->failed;
	if (!all && s->aio)
		return hand_off_stage(s, err);
	if (s->aio) {
		uint64_t at = 0;
		int r = sink_aio_wait(s->aio, 0, &at);
		if (r)
			return write_failed(s, r, at, err);
	}
	int r = put_out(s, s->stage + s->skew, s->staged, s->dfd, err);
	if (r)
		return r;
	s->staged = 0;
	s->skew = s->dfd >= 0 ? s->offset % SINK_ALIGN : 0;
	/* Advisory: an error here shows up again at the fsync, which reports it. */
	if (s->regular && s->dfd < 0 && s->offset - s->wb_offset >= SINK_WRITEBACK_BYTES) {
		sync_file_range(s->fd, (off64_t)(s->wb_base + s->wb_offset), (off64_t)(s->offset - s->wb_offset),
		                SYNC_FILE_RANGE_WRITE);
		s->wb_offset = s->offset;
	}
	return 0;
}

int sink_flush(struct sink *s, struct bgsnap_err *err)
{
	return flush_stage(s, 1, err);
}

void sink_set_async(struct sink *s, int on)
{
	if (on && s->dfd >= 0 && !s->aio && sink_aio_start(&s->aio, s->fd, s->dfd) < 0)
		s->aio = NULL;   /* no thread: full stages are written by the caller */
	else if (!on && s->aio) {
		sink_aio_stop(s->aio);
		s->aio = NULL;
	}
}

void sink_in_child(struct sink *s)
{
	s->aio = NULL;
	s->dfd = -1;
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
			size_t n = SINK_STAGE_BYTES - s->skew - s->staged;
			if (n > len)
				n = len;
			memcpy(s->stage + s->skew + s->staged, p, n);
			s->staged += n;
			p += n;
			len -= n;
			if (s->skew + s->staged == SINK_STAGE_BYTES) {
				int r = flush_stage(s, 0, err);
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

/* Gives the unnamed file a name: the final one when it is free (atomic, and
 * nothing to rename; returns 1), else a fresh hidden temporary in tmp_path
 * for the caller to rename over it (returns 0).  Or -errno. */
static int link_unnamed(struct sink *s, struct bgsnap_err *err)
{
	char lp[40];
	fd_link_path(lp, sizeof(lp), s->fd);
	if (linkat(AT_FDCWD, lp, AT_FDCWD, s->final_path, AT_SYMLINK_FOLLOW) == 0)
		return 1;
	if (errno != EEXIST)
		return err_sys(err, -errno, "cannot link the snapshot file as '%s'", s->final_path);
	char *t;
	if (tmp_name(s, &t))
		return err_set(err, -ENOMEM, "out of memory");
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 44;
	static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	char *xs = t + strlen(t) - 10;   /* the XXXXXX of "XXXXXX.tmp" */
	for (int attempt = 0; attempt < 100; attempt++) {
		for (int i = 0; i < 6; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			xs[i] = set[(x >> 33) % (sizeof(set) - 1)];
		}
		if (linkat(AT_FDCWD, lp, AT_FDCWD, t, AT_SYMLINK_FOLLOW) == 0) {
			s->tmp_path = t;
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	int e = -errno;
	free(t);
	return err_sys(err, e, "cannot link the snapshot file next to '%s'", s->final_path);
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
		s->failed = err_sys(err, -errno, "fsync of the snapshot file for '%s'", s->final_path);
		sink_abort(s);
		return s->failed;
	}
	close_direct(s);
	int as_final = 0;   /* the unnamed file was linked as final_path itself */
	if (!s->tmp_path) {
		as_final = link_unnamed(s, err);
		if (as_final < 0) {
			s->failed = as_final;
			sink_abort(s);
			return s->failed;
		}
	}
	if (close(s->fd) < 0) {
		s->fd = -1;
		s->failed = err_sys(err, -errno, "close of the snapshot file for '%s'", s->final_path);
		if (as_final)
			unlink(s->final_path);
		sink_abort(s);
		return s->failed;
	}
	s->fd = -1;
	if (s->tmp_path && rename(s->tmp_path, s->final_path) < 0) {
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
	if (s->owns_fd)
		close_direct(s);
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
