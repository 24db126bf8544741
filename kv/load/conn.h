/*
 * conn.h - the load driver's RESP2 connection: blocking, buffered, with
 * replies parsed just enough to be checked (bgsnap-kv-load only).
 */
#ifndef KV_LOAD_CONN_H
#define KV_LOAD_CONN_H

#include <stddef.h>
#include <stdint.h>

struct conn {
	int fd;
	char *rbuf;
	size_t rlen, roff, rcap;
	char *wbuf;
	size_t wlen, wcap;
};

/* A reply: type '+', '-', ':', '$' (s/len; nil len -1), '*' (n). */
struct reply {
	char type;
	long long n;
	const char *s;               /* into the connection's buffer, valid until the next read */
	long long len;
};

int conn_open(struct conn *c, int port);
void conn_close(struct conn *c);
/* Appends a command (argv with lengths) to the write buffer. */
int conn_cmd(struct conn *c, int argc, const char *const *argv, const size_t *lens);
int conn_flush(struct conn *c);
int conn_read(struct conn *c, struct reply *r);
/* One command and its reply. */
int conn_call(struct conn *c, struct reply *r, int argc, const char *const *argv, const size_t *lens);
/* The number after "field:" in INFO, or -1. */
long long conn_info(struct conn *c, const char *field);

uint64_t now_ns(void);

#endif
