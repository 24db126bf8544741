/*
 * sink.h - where snapshot bytes go.  A path sink writes to a temporary file
 * (mode 0600, same directory), and commit fsyncs it, renames it over the
 * final name and fsyncs the directory; abort unlinks it.  An fd sink writes
 * to a caller's fd (pipe, socket, file) without seeking.  Writes are all or
 * nothing: a short write is retried, EINTR too; any other failure is sticky.
 */
#ifndef BGSNAP_SINK_H
#define BGSNAP_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "err.h"

struct sink {
	int fd;
	int owns_fd;          /* path sink: we opened it, we close it   */
	char *final_path;     /* path sink only                         */
	char *tmp_path;       /* path sink only; NULL once committed/aborted */
	uint64_t offset;      /* bytes written so far                   */
	int failed;           /* negative errno once a write failed     */
};

int sink_open_path(struct sink *s, const char *path, struct bgsnap_err *err);
void sink_open_fd(struct sink *s, int fd);
/* Writes all iovecs (at most SINK_IOV_MAX) fully or fails; returns 0 or -errno. */
#define SINK_IOV_MAX 64
#define SINK_MAX_IOV SINK_IOV_MAX   /* the name format_write.c uses */
int sink_writev(struct sink *s, const struct iovec *iov, int iovcnt, struct bgsnap_err *err);
int sink_write(struct sink *s, const void *buf, size_t len, struct bgsnap_err *err);
/* Path sink: fsync, rename, fsync dir.  Fd sink: nothing to do (no fsync on
 * a pipe; fdatasync on a regular file).  Then closes what it owns. */
int sink_commit(struct sink *s, struct bgsnap_err *err);
/* Discards a path sink's temporary file; closes what it owns.  Idempotent. */
void sink_abort(struct sink *s);

#endif
