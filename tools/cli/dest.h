/*
 * dest.h - where a snapshot goes, named as QEMU names migration targets:
 *
 *   file:PATH     a file, committed atomically (bgsnap_start); also any
 *                 spec without a known scheme, ':' in it or not
 *   exec:COMMAND  the stream into `/bin/sh -c COMMAND`'s standard input
 *   unix:PATH     the stream into a connected SOCK_STREAM socket
 *   fd:N          the stream into descriptor N, inherited open for writing
 *
 * QEMU's network schemes (tcp:, rdma:, vsock:, ...) are refused by name
 * rather than taken for file names; `file:tcp:x` or `./tcp:x` is a file.
 *
 * A stream destination is opened before the engine starts and finished
 * after bgsnap_wait(): the pipe or socket closed, the command reaped.  A
 * receiver that goes away makes the engine fail with EPIPE (the caller
 * ignores SIGPIPE) and bgsnap then removes every protection; a command
 * that exits non-zero or on a signal fails the snapshot even when every
 * byte was taken.
 */
#ifndef BGSNAP_TOOLS_DEST_H
#define BGSNAP_TOOLS_DEST_H

#include <stddef.h>
#include <sys/types.h>

#include "bgsnap.h"

enum dest_kind { DEST_FILE, DEST_EXEC, DEST_UNIX, DEST_FD };

struct dest {
	enum dest_kind kind;
	const char *arg;             /* PATH or COMMAND, inside the spec       */
	int fd;                      /* fd:N                                   */
};

/* Parses `spec` (borrowed: d->arg points into it).  0, or -EINVAL with
 * a message in err naming the spec and what is wrong. */
int dest_parse(const char *spec, struct dest *d, char *err, size_t err_len);

/* A destination while a snapshot streams into it. */
struct dest_stream {
	int fd;                      /* what bgsnap_start_fd writes, or -1     */
	int owned;                   /* fd is ours to close (pipe, socket)     */
	pid_t pid;                   /* exec: the command, or 0                */
};

/* Opens a stream destination (file: nothing to open, s->fd stays -1):
 * 0, or -errno with why in err and nothing left open. */
int dest_open(const char *spec, const struct dest *d, struct dest_stream *s, char *err, size_t err_len);
/* Closes what dest_open opened and reaps the command: 0, or -EPIPE (it
 * exited non-zero or on a signal) with why in `why`. */
int dest_close(const char *spec, struct dest_stream *s, char *why, size_t why_len);

/*
 * Opens `d` (file: nothing to open) and starts `e` into it.  Returns
 * bgsnap_start's result; on failure nothing is left open or running (the
 * command reaped) and err says why, as dest_finish does.
 */
int dest_start(bgsnap_engine *e, const char *spec, const struct dest *d, struct dest_stream *s, char *err,
               size_t err_len);

/*
 * After bgsnap_wait() returned `rc`: closes what dest_start opened and
 * reaps the command.  Returns rc when it is an error (err then holds the
 * engine's message, naming the destination, and the command's status
 * when it failed too); otherwise 0, or -EPIPE when the command exited
 * non-zero or on a signal, with its status in err.
 */
int dest_finish(bgsnap_engine *e, const char *spec, struct dest_stream *s, int rc, char *err, size_t err_len);

#endif
