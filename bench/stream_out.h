/*
 * stream_out.h - `bgsnap bench --out` into a stream destination (exec:,
 * unix:, fd:): the engine writes into a pipe and a thread copies every
 * byte to the destination and to an unlinked file of the bench's own,
 * which the bench verifies (and restores) as it does a snapshot file.
 */
#ifndef BGSNAP_BENCH_STREAM_OUT_H
#define BGSNAP_BENCH_STREAM_OUT_H

#include <pthread.h>
#include <stdint.h>

#include "cli/dest.h"

struct stream_out {
	const char *spec;
	struct dest_stream ds;       /* the destination                        */
	int pipe_r, pipe_w;          /* the engine writes pipe_w               */
	int copy_fd;                 /* the bench's copy, unlinked             */
	pthread_t thread;
	uint64_t bytes;              /* copied to both                         */
	int err;                     /* first failure of the thread, -errno    */
	char msg[320];
};

/* Opens the destination and the copy and starts the thread: 0, or -errno
 * with why in err and nothing left open. */
int stream_out_open(struct stream_out *s, const char *spec, const struct dest *d, char *err, size_t err_len);
/* After bgsnap_wait() returned rc: ends the pipe, waits for the thread,
 * closes the destination and reaps its command.  Returns rc when it is an
 * error, else 0 or the failure of the copy or of the receiver; err names
 * the destination and says why (the engine's message `emsg` included).
 * The copy stays open (copy_fd) for the verification. */
int stream_out_close(struct stream_out *s, int rc, const char *emsg, char *err, size_t err_len);

#endif
