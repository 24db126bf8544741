/*
 * kvclient.h - what the bgsnap-kv tests need to talk to a server: start
 * $BUILD/bgsnap-kv on a free loopback port, a blocking RESP2 client with
 * one request in flight, and the server's end.  libc only.
 */
#ifndef BGSNAP_KVCLIENT_H
#define BGSNAP_KVCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct kvc {
	int fd;
	char buf[65536];
	size_t len, off;
};

/* A reply: type '+', '-', ':', '$' (s, len; nil: len -1) or '*' (n). */
struct kvr {
	char type;
	long long n;
	char *s;                     /* malloc'd, NUL-terminated; caller frees  */
	long long len;
};

/* A loopback TCP port nobody listens on right now. */
int kv_free_port(void);
/* $BUILD/bgsnap-kv (BUILD defaults to build). */
const char *kv_server_path(void);
/* Starts `bin` (NULL: kv_server_path()) with --port PORT and the NULL-ended
 * arguments, stderr to `log`; waits until it answers PING (or exits).
 * Returns the pid, or -1 if it exited (its status in *status). */
pid_t kv_spawn(const char *bin, int port, const char *log, int *status, const char *const *args);
/* SHUTDOWN NOSAVE (or SIGKILL after 10 s); the exit status. */
int kv_stop(pid_t pid, int port);

int kvc_connect(struct kvc *c, int port);
void kvc_close(struct kvc *c);
/* Sends one command; 0 or -1. */
int kvc_send(struct kvc *c, int argc, const char *const *argv, const size_t *lens);
/* Reads one reply (for '*', only the header: read the elements next); 0 or -1. */
int kvc_read(struct kvc *c, struct kvr *r);
/* Sends and reads: argv of NUL-terminated strings. */
int kvc_call(struct kvc *c, struct kvr *r, int argc, const char *const *argv);
/* The value of "field:" in an INFO reply, or -1. */
long long kv_info_field(struct kvc *c, const char *field);

#endif
