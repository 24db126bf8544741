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
 * that out, the file is "<dir>/.<name>.XXXXXX.tmp" (for a name too long
 * for that, a shortened one: tmp_name_fill) from the start, which
 * sink_abort() unlinks but a killed host leaves.
 */
#include "sink/sink.h"

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

#include "util/clock.h"

/* Page-aligned, allocated at open: a fork child writes through the sink and
 * must not allocate.  A direct sink gets SINK_STAGES of them. */
static int stage_alloc(struct sink *s, struct bgsnap_err *err)
{
	struct stat st;
	s->regular = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
	off_t pos = s->regular && !s->owns_fd ? lseek(s->fd, 0, SEEK_CUR) : 0;
	s->wb_base = pos > 0 ? (uint64_t)pos : 0;
	unsigned n = s->dfd >= 0 ? SINK_STAGES : 1;
	s->stage = s->stages = aligned_alloc(SINK_ALIGN, (size_t)n * SINK_STAGE_BYTES);
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

static int same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The longest name the directory takes: NAME_MAX, or less where the file
 * system says so. */
static size_t name_max(int dirfd)
{
	long m = fpathconf(dirfd, _PC_NAME_MAX);
	return m > 0 && m < NAME_MAX ? (size_t)m : NAME_MAX;
}

/*
 * A fresh hidden name for `base` in buf (len >= max + 1): ".<base>.XXXXXX.tmp",
 * or, where that would exceed `max` bytes (a final name of more than
 * max - 12), ".<head>~<hash>.XXXXXX.tmp" with as much of the name's head as
 * fits and a hash of the whole name, so that a long final name can still be
 * written and replaced.
 */
static void tmp_name_fill(char *buf, size_t len, const char *base, size_t max, uint64_t *x)
{
	static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	char xs[7];
	for (int i = 0; i < 6; i++) {
		*x = *x * 6364136223846793005ull + 1442695040888963407ull;
		xs[i] = set[(*x >> 33) % (sizeof(set) - 1)];
	}
	xs[6] = '\0';
	size_t bl = strlen(base);
	const size_t frame = 1 + 1 + 6 + 4;   /* '.' base '.' XXXXXX ".tmp" */
	if (bl + frame <= max) {
		snprintf(buf, len, ".%s.%s.tmp", base, xs);
		return;
	}
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (size_t i = 0; i < bl; i++)
		h = (h ^ (unsigned char)base[i]) * 16777619u;
	const size_t tag = 1 + 8;   /* '~' and 8 hex digits */
	int head = max > frame + tag ? (int)(max - frame - tag) : 0;
	snprintf(buf, len, ".%.*s~%08x.%s.tmp", head, base, h, xs);
}

static uint64_t tmp_seed(void)
{
	return now_ns() ^ (uint64_t)getpid() << 44;
}

/*
 * Makes the file exist under a fresh hidden name in the directory: creates
 * it (fd < 0) or links the open unnamed file `fd` there.  Sets tmp_name.
 * Returns the new descriptor (create) or 0 (link), or -errno.
 */
static int tmp_name_take(struct sink *s, int fd)
{
	size_t max = name_max(s->dirfd), len = max + 1;
	char *t = malloc(len);
	if (!t)
		return -ENOMEM;
	char lp[40];
	if (fd >= 0)
		fd_link_path(lp, sizeof(lp), fd);
	uint64_t x = tmp_seed();
	int r = -EEXIST;
	for (int attempt = 0; attempt < 100 && r == -EEXIST; attempt++) {
		tmp_name_fill(t, len, s->base, max, &x);
		if (fd < 0)
			r = openat(s->dirfd, t, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		else
			r = linkat(AT_FDCWD, lp, s->dirfd, t, AT_SYMLINK_FOLLOW);
		if (r < 0)
			r = -errno;
	}
	if (r < 0) {
		free(t);
		return r;
	}
	s->tmp_name = t;
	return r;
}

/* An unnamed file in the directory, or -1 where there can be none: a
 * kernel or file system without O_TMPFILE, or no /proc to link it by at
 * commit. */
static int open_unnamed(int dirfd)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* stat, not open: the umask may have left the file unreadable. */
	char lp[40];
	fd_link_path(lp, sizeof(lp), fd);
	struct stat a, b;
	if (fstat(fd, &a) < 0 || stat(lp, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
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
	s->dirfd = -1;
	if (!path || !*path)
		return err_set(err, -EINVAL, "empty snapshot path");
	size_t plen = strlen(path);
	if (path[plen - 1] == '/')
		return err_set(err, -EISDIR, "snapshot path '%s' names a directory", path);
	s->final_path = strdup(path);
	char *c1 = strdup(path), *c2 = strdup(path);
	s->base = c1 ? strdup(basename(c1)) : NULL;
	if (!s->final_path || !s->base || !c2) {
		free(c1);
		free(c2);
		sink_abort(s);
		return err_set(err, -ENOMEM, "out of memory");
	}
	/* Every later name is looked up in this directory, not in whatever
	 * the current directory is by then (a relative path, and a host that
	 * chdirs while the snapshot runs). */
	s->dirfd = open(dirname(c2), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e = -errno;
	free(c1);
	free(c2);
	if (s->dirfd < 0) {
		sink_abort(s);
		return err_sys(err, e, "cannot open the directory of '%s'", path);
	}
	/* Refused now rather than at commit, after all the work. */
	if (strlen(s->base) > name_max(s->dirfd)) {
		sink_abort(s);
		return err_set(err, -ENAMETOOLONG, "snapshot path '%s': the file name is longer than the %zu bytes "
		               "its directory allows", path, name_max(s->dirfd));
	}
	struct stat st;
	if (fstatat(s->dirfd, s->base, &st, 0) == 0 && S_ISDIR(st.st_mode)) {
		sink_abort(s);
		return err_set(err, -EISDIR, "snapshot path '%s' names a directory", path);
	}
	int fd = open_unnamed(s->dirfd);
	if (fd < 0) {
		fd = tmp_name_take(s, -1);
		if (fd < 0) {
			sink_abort(s);
			return fd == -ENOMEM ? err_set(err, fd, "out of memory")
			                     : err_sys(err, fd, "cannot create a temporary file next to '%s'", path);
		}
	}
	s->fd = fd;
	s->owns_fd = 1;
	/* O_CREAT and O_TMPFILE apply the umask, which may leave less.  A file
	 * system without Unix modes (vfat, some FUSE and CIFS mounts) refuses
	 * any change: its mount options decide. */
	if (fchmod(fd, 0600) < 0 && errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP) {
		e = -errno;
		sink_abort(s);
		return err_sys(err, e, "cannot make the snapshot file for '%s' mode 0600", path);
	}
	/* Where the file system refuses O_DIRECT (EINVAL), the page cache it
	 * is.  A named temporary is opened by name: make sure it is still the
	 * file we created. */
	if (direct) {
		char lp[40];
		fd_link_path(lp, sizeof(lp), fd);
		s->dfd = s->tmp_name ? openat(s->dirfd, s->tmp_name, O_WRONLY | O_DIRECT | O_CLOEXEC)
		                     : open(lp, O_WRONLY | O_DIRECT | O_CLOEXEC);
		if (s->dfd >= 0 && !same_file(fd, s->dfd))
			close_direct(s);
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
	s->dirfd = -1;
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
	uint64_t t0 = now_ns(), bytes = s->staged;
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
	/* Writeback started here is part of what the destination costs. */
	sink_meter_add(&s->meter, bytes, now_ns() - t0);
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

int sink_out_writev(void *ctx, const struct iovec *iov, int iovcnt, struct bgsnap_err *err)
{
	return sink_writev(ctx, iov, iovcnt, err);
}

int sink_out_flush(void *ctx, struct bgsnap_err *err)
{
	return sink_flush(ctx, err);
}

uint64_t sink_rate(struct sink *s)
{
	return s->aio ? sink_aio_rate(s->aio) : sink_meter_rate(&s->meter);
}

uint64_t sink_out_rate(void *ctx)
{
	return sink_rate(ctx);
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
	/* An unnamed file takes the final name when it is free: atomic, and
	 * nothing to rename.  Else a hidden name, renamed over the old file. */
	int named = !!s->tmp_name;
	if (!named) {
		char lp[40];
		fd_link_path(lp, sizeof(lp), s->fd);
		r = linkat(AT_FDCWD, lp, s->dirfd, s->base, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
		if (r == -EEXIST)
			r = tmp_name_take(s, s->fd);
		if (r < 0) {
			s->failed = err_sys(err, r, "cannot link the snapshot file as '%s'", s->final_path);
			sink_abort(s);
			return s->failed;
		}
	}
	struct stat mine;
	int have_mine = fstat(s->fd, &mine) == 0;
	r = close(s->fd) < 0 ? -errno : 0;
	s->fd = -1;
	if (r && !s->tmp_name) {
		/* Already under the final name: a failed snapshot leaves no
		 * file, so take the name back, if it is still ours. */
		struct stat now;
		s->failed = err_sys(err, r, "close of the snapshot file for '%s'", s->final_path);
		if (have_mine && fstatat(s->dirfd, s->base, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now.st_dev == mine.st_dev && now.st_ino == mine.st_ino)
			unlinkat(s->dirfd, s->base, 0);
	} else if (r) {
		s->failed = err_sys(err, r, "close of the snapshot file for '%s'", s->final_path);
	} else if (s->tmp_name && renameat(s->dirfd, s->tmp_name, s->dirfd, s->base) < 0) {
		s->failed = err_sys(err, -errno, "cannot rename '%s' over '%s'", s->tmp_name, s->final_path);
	}
	if (s->failed && s->tmp_name) {
		sink_abort(s);
		return s->failed;
	}
	free(s->tmp_name);
	s->tmp_name = NULL;
	/* From here the snapshot is committed: complete, fsynced, under its
	 * name, the old file gone.  Failing now would leave a file after a
	 * failure and could not bring the old one back, so a failed fsync of
	 * the directory is only recorded: the name may not survive a crash. */
	if (!s->failed && fsync(s->dirfd) < 0)
		s->dir_sync_error = -errno;
	sink_abort(s);   /* nothing left to remove: closes the directory, frees the names */
	return s->failed;
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
	/* dirfd means something only in a path sink (base set): a zeroed
	 * sink that was never opened must not close descriptor 0. */
	sink_remove_temporary(s);
	free(s->tmp_name);
	s->tmp_name = NULL;
	if (s->base && s->dirfd >= 0)
		close(s->dirfd);
	s->dirfd = -1;
	free(s->final_path);
	free(s->base);
	s->final_path = s->base = NULL;
	s->owns_fd = 0;
}

void sink_remove_temporary(struct sink *s)
{
	if (s->base && s->tmp_name && s->dirfd >= 0)
		unlinkat(s->dirfd, s->tmp_name, 0);
}
