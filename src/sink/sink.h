/*
 * sink.h - where snapshot bytes go.  A path sink writes to an unnamed file
 * (O_TMPFILE; else a hidden temporary), mode 0600, in the final directory;
 * commit fsyncs it, gives it the final name (link, or rename over an
 * existing file) and fsyncs the directory; abort removes it.  An fd sink writes
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
 *
 * A path sink writes its stages with O_DIRECT where the file system takes
 * it (a second descriptor of the same file), so the kernel does not copy
 * them into the page cache: with a thread writing random pages of 4 GiB
 * beside it, write(2) of 2 GiB through the page cache took 4.4-5.8 s, with
 * O_DIRECT 0.70-0.75 s, and a 4 GiB uffd snapshot fell from 22-32 s to 6-10 s.
 * Only the aligned middle of a stage goes direct: the stage mirrors the file
 * offset modulo SINK_ALIGN, the unaligned ends (the header, the tail) go
 * through the page cache, and every write of a path sink is a pwrite at its
 * offset, so the two descriptors never disagree on a file position.  With
 * sink_set_async, a thread (sink_aio.c) writes full stages while the caller
 * fills the next one, SINK_STAGES in all.
 */
#ifndef BGSNAP_SINK_H
#define BGSNAP_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/err.h"
#include "util/page.h"

/* How fast a destination took bytes: the bytes of its write calls over
 * their wall time, forgetting by halves past SINK_METER_WINDOW so that it
 * follows the last 32-64 MiB.  An adaptive compressing writer compares it
 * with its compressors (format/format_adapt.h). */
#define SINK_METER_WINDOW (64ull << 20)
struct sink_meter {
	uint64_t bytes, ns;
};
static inline void sink_meter_add(struct sink_meter *m, uint64_t bytes, uint64_t ns)
{
	m->bytes += bytes;
	m->ns += ns;
	if (m->bytes > SINK_METER_WINDOW) {
		m->bytes /= 2;
		m->ns /= 2;
	}
}
/* Bytes per second; 0 before anything was written. */
static inline uint64_t sink_meter_rate(const struct sink_meter *m)
{
	if (!m->bytes)
		return 0;
	return m->ns ? (uint64_t)((double)m->bytes * 1e9 / (double)m->ns) : UINT64_MAX;
}

struct sink {
	int fd;
	int owns_fd;          /* path sink: we opened it, we close it   */
	char *final_path;     /* path sink only: as given, for messages  */
	int dirfd;            /* path sink: its directory, or -1         */
	char *base;           /* path sink: the final name in dirfd      */
	char *tmp_name;       /* path sink: a hidden name in dirfd that we
	                         created (none while the file is unnamed) */
	uint64_t offset;      /* bytes written so far                   */
	int failed;           /* negative errno once a write failed     */
	uint8_t *stage;       /* SINK_STAGE_BYTES; NULL once released   */
	size_t staged;        /* bytes in stage not yet written         */
	int regular;          /* the fd is a regular file: early writeback */
	uint64_t wb_offset;   /* writeback started up to here          */
	uint64_t wb_base;     /* file offset of our first byte (fd sink) */
	int dfd;              /* path sink: the file opened O_DIRECT, or -1 */
	size_t skew;          /* dfd: staged bytes start at stage + skew == offset % SINK_ALIGN */
	uint8_t *stages;      /* dfd: SINK_STAGES stages; stage is one of them */
	struct sink_aio *aio; /* full stages go to its thread (sink_set_async) */
	int dir_sync_error;   /* path sink: -errno of a failed fsync of the
	                         directory after commit named the file, else 0 */
	struct sink_meter meter;   /* stages written by the caller's thread */
};

/* Writeback of a regular file is started every SINK_WRITEBACK_BYTES, so that
 * the final fsync waits for the tail only, not for the whole file. */
#define SINK_WRITEBACK_BYTES (32u << 20)

#define SINK_STAGE_BYTES (1u << 20)
/* Direct writes start at file offsets and addresses that are multiples of
 * this and span a multiple of it: a page, enough for logical blocks up to
 * 4 KiB. */
#define SINK_ALIGN PAGE_SIZE_
/* Stages of a direct sink: one being filled, the others being written. */
#define SINK_STAGES 8u

/* Both return 0 or -errno (-ENOMEM for the stage buffer).  `direct`: try
 * O_DIRECT (path sink only; silently not used where the file system refuses
 * it). */
int sink_open_path(struct sink *s, const char *path, int direct, struct bgsnap_err *err);
int sink_open_fd(struct sink *s, int fd, struct bgsnap_err *err);
/* Writes all iovecs (at most SINK_IOV_MAX) fully or fails; returns 0 or -errno. */
#define SINK_IOV_MAX 64
int sink_writev(struct sink *s, const struct iovec *iov, int iovcnt, struct bgsnap_err *err);
int sink_write(struct sink *s, const void *buf, size_t len, struct bgsnap_err *err);
/* Writes what is staged.  Returns 0 or the sticky -errno. */
int sink_flush(struct sink *s, struct bgsnap_err *err);
/* The same two as the encoder's output (struct fmt_out in format/format.h,
 * with ctx = the sink and iov_max = SINK_IOV_MAX); the sink knows nothing
 * of the format. */
int sink_out_writev(void *ctx, const struct iovec *iov, int iovcnt, struct bgsnap_err *err);
int sink_out_flush(void *ctx, struct bgsnap_err *err);
/* The rate the destination takes bytes at (struct sink_meter): the
 * sink thread's writes when it has one, else the caller's; 0 before the
 * first stage was written.  Also the encoder's fmt_out.rate. */
uint64_t sink_rate(struct sink *s);
uint64_t sink_out_rate(void *ctx);
/*
 * Flushes, then path sink: fsync, name the file (link it as the final
 * name, or rename it over an existing file), fsync the directory.  Fd
 * sink: no fsync on a pipe; fdatasync on a regular file.  Then closes what
 * it owns and frees the stage.
 *
 * Path sink: 0 means the file has its final name and its complete, fsynced
 * content (an older file of that name is replaced).  The directory's fsync
 * comes after the name is in place, when nothing can be undone: if it
 * fails, commit still returns 0 and sets dir_sync_error; the file is
 * there, but after a system crash the name may be missing or still the old
 * file.  Any other failure returns -errno and leaves the final name as it
 * was (no file, or the old one).
 */
int sink_commit(struct sink *s, struct bgsnap_err *err);
/* Discards what is staged and a path sink's unfinished file (an unnamed
 * one goes with its descriptor, a named temporary is unlinked); closes
 * what it owns; frees the stage.  Idempotent; also the way to release an fd sink
 * that was never committed. */
void sink_abort(struct sink *s);
/* Unlinks a path sink's hidden temporary name, if it has one (a fork child
 * whose parent died: nobody else will).  Nothing else changes. */
void sink_remove_temporary(struct sink *s);
/* Direct sinks: start a thread that writes full stages (on = 1; where it
 * cannot start, the caller's thread writes them), or keep writing them in
 * the calling thread (0, the default).  A fork child must call
 * sink_in_child before it writes: it has no such thread. */
void sink_set_async(struct sink *s, int on);
/* In a fork child: forget the parent's writing thread (it does not exist
 * here) and the O_DIRECT descriptor (the child closes it), and write
 * through the page cache, synchronously. */
void sink_in_child(struct sink *s);

/* sink_aio.c.  pwrite of all of [buf, buf+len) at `off`, through dfd (when
 * >= 0) while aligned, else through fd; 0 or -errno with *failed_at set. */
int sink_pwrite_all(int fd, int dfd, const uint8_t *buf, size_t len, uint64_t off, uint64_t *failed_at);
struct sink_aio;
int sink_aio_start(struct sink_aio **out, int fd, int dfd);
/* Queues a write (the stage must stay untouched until it completes) and
 * returns the first failure of an earlier one, if any. */
int sink_aio_submit(struct sink_aio *a, const uint8_t *buf, size_t len, uint64_t off, uint64_t *failed_at);
/* Waits until at most `in_flight` writes are pending; returns the first
 * failure, if any. */
int sink_aio_wait(struct sink_aio *a, unsigned in_flight, uint64_t *failed_at);
/* The rate its writes went at (struct sink_meter), 0 before the first. */
uint64_t sink_aio_rate(struct sink_aio *a);
/* Finishes the pending writes and joins the thread.  NULL is a no-op. */
void sink_aio_stop(struct sink_aio *a);

#endif
