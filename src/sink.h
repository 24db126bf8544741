/*
 * sink.h - where snapshot bytes go.  A path sink writes to a temporary file
 * (mode 0600, same directory), and commit fsyncs it, renames it over the
 * final name and fsyncs the directory; abort unlinks it.  An fd sink writes
 * to a caller's fd (pipe, socket, file) without seeking.  Writes are all or
 * nothing: a short write is retried, EINTR too; any other failure is sticky.
 *
 * Bytes are staged in a SINK_STAGE_BYTES buffer and written when it fills,
 * on sink_flush and on commit.  Measured on the KVM/PVM guests this project
 * runs on: write(2) straight from 2 GiB of the host's memory took 3.4-4.3 s,
 * the same bytes copied through a 1 MiB buffer 2.1-2.8 s (the kernel's reads
 * of cold user pages cost more than our memcpy of them); it also turns a
 * record's three iovecs into one contiguous write.  A failure can therefore
 * surface at a later call than the one whose bytes failed; it is still
 * sticky, and the offset in its message is the file offset that failed.
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
	uint8_t *stage;       /* SINK_STAGE_BYTES; NULL once released   */
	size_t staged;        /* bytes in stage not yet written         */
	int regular;          /* the fd is a regular file: early writeback */
	uint64_t wb_offset;   /* writeback started up to here          */
	uint64_t wb_base;     /* file offset of our first byte (fd sink) */
};

/* Writeback of a regular file is started every SINK_WRITEBACK_BYTES, so that
 * the final fsync waits for the tail only, not for the whole file. */
#define SINK_WRITEBACK_BYTES (32u << 20)

#define SINK_STAGE_BYTES (1u << 20)

/* Both return 0 or -errno (-ENOMEM for the stage buffer). */
int sink_open_path(struct sink *s, const char *path, struct bgsnap_err *err);
int sink_open_fd(struct sink *s, int fd, struct bgsnap_err *err);
/* Writes all iovecs (at most SINK_IOV_MAX) fully or fails; returns 0 or -errno. */
#define SINK_IOV_MAX 64
int sink_writev(struct sink *s, const struct iovec *iov, int iovcnt, struct bgsnap_err *err);
int sink_write(struct sink *s, const void *buf, size_t len, struct bgsnap_err *err);
/* Writes what is staged.  Returns 0 or the sticky -errno. */
int sink_flush(struct sink *s, struct bgsnap_err *err);
/* Flushes, then path sink: fsync, rename, fsync dir.  Fd sink: no fsync on
 * a pipe; fdatasync on a regular file.  Then closes what it owns and frees
 * the stage. */
int sink_commit(struct sink *s, struct bgsnap_err *err);
/* Discards what is staged and a path sink's temporary file; closes what it
 * owns; frees the stage.  Idempotent; also the way to release an fd sink
 * that was never committed. */
void sink_abort(struct sink *s);

#endif
