/* conn.c - the load driver's RESP2 connection (see conn.h). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int conn_open(struct conn *c, int port)
{
	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static int wput(struct conn *c, const void *p, size_t n)
{
	if (c->wlen + n > c->wcap) {
		size_t nc = c->wcap ? c->wcap : 65536;
		while (nc < c->wlen + n)
			nc *= 2;
		char *b = realloc(c->wbuf, nc);
		if (!b)
			return -1;
		c->wbuf = b;
		c->wcap = nc;
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
	return 0;
}

int conn_cmd(struct conn *c, int argc, const char *const *argv, const size_t *lens)
{
	char h[32];
	int n = snprintf(h, sizeof(h), "*%d\r\n", argc);
	if (wput(c, h, (size_t)n) < 0)
		return -1;
	for (int i = 0; i < argc; i++) {
		size_t l = lens ? lens[i] : strlen(argv[i]);
		n = snprintf(h, sizeof(h), "$%zu\r\n", l);
		if (wput(c, h, (size_t)n) < 0 || wput(c, argv[i], l) < 0 || wput(c, "\r\n", 2) < 0)
			return -1;
	}
	return 0;
}

int conn_flush(struct conn *c)
{
	size_t off = 0;
	while (off < c->wlen) {
		ssize_t w = send(c->fd, c->wbuf + off, c->wlen - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	c->wlen = 0;
	return 0;
}

/* At least `need` unread bytes in rbuf. */
static int want(struct conn *c, size_t need)
{
	while (c->rlen - c->roff < need) {
		if (c->roff && c->roff == c->rlen)
			c->roff = c->rlen = 0;
		if (c->rlen + 65536 > c->rcap || c->roff + need > c->rcap) {
			if (c->roff) {
				memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
				c->rlen -= c->roff;
				c->roff = 0;
			}
			size_t nc = c->rcap ? c->rcap : 1 << 20;
			while (nc < c->rlen + 65536 || nc < need)
				nc *= 2;
			if (nc != c->rcap) {
				char *b = realloc(c->rbuf, nc);
				if (!b)
					return -1;
				c->rbuf = b;
				c->rcap = nc;
			}
		}
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->rlen += (size_t)n;
	}
	return 0;
}

int conn_read(struct conn *c, struct reply *r)
{
	memset(r, 0, sizeof(*r));
	size_t scanned = 0;
	char *nl;
	for (;;) {
		nl = c->rlen > c->roff + scanned ? memchr(c->rbuf + c->roff + scanned, '\n', c->rlen - c->roff - scanned)
		                                 : NULL;
		if (nl)
			break;
		scanned = c->rlen - c->roff;
		if (want(c, scanned + 1) < 0)
			return -1;
	}
	char *line = c->rbuf + c->roff;
	size_t ll = (size_t)(nl - line);
	c->roff += ll + 1;
	r->type = line[0];
	if (r->type == '+' || r->type == '-') {
		r->s = line + 1;
		r->len = (long long)ll - 2;
		return 0;
	}
	r->n = strtoll(line + 1, NULL, 10);
	if (r->type != '$' || r->n < 0) {
		r->len = -1;
		return 0;
	}
	r->len = r->n;
	if (want(c, (size_t)r->len + 2) < 0)
		return -1;
	r->s = c->rbuf + c->roff;
	c->roff += (size_t)r->len + 2;
	return 0;
}

int conn_call(struct conn *c, struct reply *r, int argc, const char *const *argv, const size_t *lens)
{
	if (conn_cmd(c, argc, argv, lens) < 0 || conn_flush(c) < 0)
		return -1;
	return conn_read(c, r);
}

long long conn_info(struct conn *c, const char *field)
{
	struct reply r;
	const char *argv[] = { "INFO" };
	if (conn_call(c, &r, 1, argv, NULL) < 0 || r.type != '$')
		return -1;
	size_t fl = strlen(field);
	for (long long i = 0; i + (long long)fl < r.len; i++) {
		if ((i == 0 || r.s[i - 1] == '\n') && !memcmp(r.s + i, field, fl) && r.s[i + (long long)fl] == ':')
			return strtoll(r.s + i + (long long)fl + 1, NULL, 10);
	}
	return -1;
}
