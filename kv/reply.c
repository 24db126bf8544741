/* reply.c - RESP2 replies into an output buffer (see reply.h). */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void out_free(struct outbuf *o)
{
	free(o->buf);
	o->buf = NULL;
	o->len = o->sent = o->cap = 0;
}

void out_compact(struct outbuf *o)
{
	if (o->sent == o->len) {
		o->len = o->sent = 0;
		/* A large reply's buffer is not kept once sent. */
		if (o->cap > 1u << 20) {
			free(o->buf);
			o->buf = NULL;
			o->cap = 0;
		}
	} else if (o->sent > o->len / 2) {
		memmove(o->buf, o->buf + o->sent, o->len - o->sent);
		o->len -= o->sent;
		o->sent = 0;
	}
}

void out_raw(struct outbuf *o, const void *p, size_t n)
{
	if (o->failed)
		return;
	if (o->len - o->sent + n > o->limit) {
		o->failed = true;
		return;
	}
	if (o->len + n > o->cap) {
		size_t nc = o->cap ? o->cap : 4096;
		while (nc < o->len + n)
			nc *= 2;
		char *nb = realloc(o->buf, nc);
		if (!nb) {
			o->failed = true;
			return;
		}
		o->buf = nb;
		o->cap = nc;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static void out_line(struct outbuf *o, char type, const char *s, size_t n)
{
	out_raw(o, &type, 1);
	out_raw(o, s, n);
	out_raw(o, "\r\n", 2);
}

void reply_simple(struct outbuf *o, const char *s)
{
	out_line(o, '+', s, strlen(s));
}

void reply_ok(struct outbuf *o)
{
	out_raw(o, "+OK\r\n", 5);
}

void reply_error(struct outbuf *o, const char *s)
{
	out_line(o, '-', s, strlen(s));
}

void reply_errorf(struct outbuf *o, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	/* An error is one line: a client's bytes quoted in it must not end it. */
	for (int i = 0; i < n; i++)
		if (msg[i] == '\r' || msg[i] == '\n')
			msg[i] = ' ';
	out_line(o, '-', msg, (size_t)n);
}

static void out_num(struct outbuf *o, char type, long long v)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%c%lld\r\n", type, v);
	out_raw(o, b, (size_t)n);
}

void reply_int(struct outbuf *o, long long v)
{
	out_num(o, ':', v);
}

void reply_bulk(struct outbuf *o, const void *p, size_t n)
{
	out_num(o, '$', (long long)n);
	out_raw(o, p, n);
	out_raw(o, "\r\n", 2);
}

void reply_nil(struct outbuf *o)
{
	out_raw(o, "$-1\r\n", 5);
}

void reply_array(struct outbuf *o, size_t n)
{
	out_num(o, '*', (long long)n);
}
