/*
 * reply.h - RESP2 replies appended to a client's output buffer.  A buffer
 * that cannot grow (out of memory, or past its hard limit) is marked
 * failed; the server then drops the client instead of sending half a reply.
 */
#ifndef KV_REPLY_H
#define KV_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outbuf {
	char *buf;
	size_t len;                  /* bytes held                             */
	size_t sent;                 /* of those, already written to the socket */
	size_t cap;
	size_t limit;                /* hard limit on unsent bytes             */
	bool failed;
};

void out_free(struct outbuf *o);
/* Drops the sent prefix (after a write). */
void out_compact(struct outbuf *o);
void out_raw(struct outbuf *o, const void *p, size_t n);
void reply_simple(struct outbuf *o, const char *s);          /* +s          */
void reply_error(struct outbuf *o, const char *s);           /* -s          */
void reply_errorf(struct outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_int(struct outbuf *o, long long v);               /* :v          */
void reply_bulk(struct outbuf *o, const void *p, size_t n);  /* $n p        */
void reply_nil(struct outbuf *o);                            /* $-1         */
void reply_array(struct outbuf *o, size_t n);                /* *n          */
void reply_ok(struct outbuf *o);

#endif
