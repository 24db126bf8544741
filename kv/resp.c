/*
 * resp.c - the RESP2 request parser (see resp.h).
 *
 * Every length a client announces is checked against a limit before any
 * memory is sized by it: the argument vector grows with the arguments that
 * actually arrive, never with the count in the '*' line; a bulk length is
 * refused over bulk_max, a header line over inline_max.  Error texts are
 * Redis's, so clients see what they would see from redis-server.
 */
#include "resp.h"

#include <stdlib.h>
#include <string.h>

void resp_init(struct resp_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->nargs = -1;
}

void resp_free(struct resp_parser *p)
{
	free(p->argv);
	resp_init(p);
}

void resp_next(struct resp_parser *p)
{
	p->pos = 0;
	p->nargs = -1;
	p->argc = 0;
	p->inline_cmd = 0;
}

static int push_arg(struct resp_parser *p, size_t off, size_t len)
{
	if (p->argc == p->argv_cap) {
		size_t nc = p->argv_cap ? p->argv_cap * 2 : 8;
		struct resp_arg *n = realloc(p->argv, nc * sizeof(*n));
		if (!n)
			return -1;
		p->argv = n;
		p->argv_cap = nc;
	}
	p->argv[p->argc].off = off;
	p->argv[p->argc].len = len;
	p->argc++;
	return 0;
}

/* A decimal integer filling s[0..n) exactly ("-1", "42"; no '+', no
 * spaces); 0 or -1. */
static int parse_ll(const char *s, size_t n, long long *out)
{
	size_t i = 0;
	int neg = 0;
	if (n && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n || n - i > 18)
		return -1;
	long long v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

/*
 * The line starting at buf[from] (up to "\r\n"): 1 with *eol at its '\r',
 * 0 if not complete yet, -1 if longer than `max` without an end.
 */
static int find_line(const char *buf, size_t len, size_t from, size_t max, size_t *eol)
{
	size_t avail = len - from;
	size_t scan = avail < max + 1 ? avail : max + 1;
	const char *cr = memchr(buf + from, '\r', scan);
	if (!cr)
		return avail > max ? -1 : 0;
	size_t at = (size_t)(cr - buf);
	if (at + 1 >= len)
		return 0;
	*eol = at;
	return 1;
}

static int parse_inline(struct resp_parser *p, const char *buf, size_t len, const struct resp_limits *lim,
                        size_t *used, const char **err)
{
	size_t scan = len < lim->inline_max + 1 ? len : lim->inline_max + 1;
	const char *nl = memchr(buf, '\n', scan);
	if (!nl) {
		if (len > lim->inline_max) {
			*err = "Protocol error: too big inline request";
			return RESP_ERR;
		}
		return RESP_MORE;
	}
	size_t end = (size_t)(nl - buf);
	size_t line_end = end && buf[end - 1] == '\r' ? end - 1 : end;
	p->inline_cmd = 1;
	for (size_t i = 0; i < line_end;) {
		while (i < line_end && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		size_t start = i;
		while (i < line_end && buf[i] != ' ' && buf[i] != '\t')
			i++;
		if (i > start) {
			if (p->argc >= lim->args_max) {
				*err = "Protocol error: invalid multibulk length";
				return RESP_ERR;
			}
			if (push_arg(p, start, i - start) < 0)
				return RESP_NOMEM;
		}
	}
	*used = end + 1;
	return RESP_CMD;
}

static int parse_count(struct resp_parser *p, const char *buf, size_t len, const struct resp_limits *lim,
                       const char **err)
{
	size_t eol;
	int r = find_line(buf, len, 0, lim->inline_max, &eol);
	if (r < 0) {
		*err = "Protocol error: too big mbulk count string";
		return RESP_ERR;
	}
	if (r == 0)
		return RESP_MORE;
	long long n;
	if (buf[eol + 1] != '\n' || parse_ll(buf + 1, eol - 1, &n) < 0 || n > (long long)lim->args_max) {
		*err = "Protocol error: invalid multibulk length";
		return RESP_ERR;
	}
	p->nargs = n;
	p->pos = eol + 2;
	return RESP_CMD;
}

/* The next "$L\r\n<L bytes>\r\n" at p->pos; RESP_CMD once it is in. */
static int parse_bulk(struct resp_parser *p, const char *buf, size_t len, const struct resp_limits *lim,
                      const char **err)
{
	static char expected[40];
	if (p->pos >= len)
		return RESP_MORE;
	if (buf[p->pos] != '$') {
		memcpy(expected, "Protocol error: expected '$', got ' '", 38);
		expected[35] = buf[p->pos];
		*err = expected;
		return RESP_ERR;
	}
	size_t eol;
	int r = find_line(buf, len, p->pos, lim->inline_max, &eol);
	if (r < 0) {
		*err = "Protocol error: too big bulk count string";
		return RESP_ERR;
	}
	if (r == 0)
		return RESP_MORE;
	long long n;
	if (buf[eol + 1] != '\n' || parse_ll(buf + p->pos + 1, eol - p->pos - 1, &n) < 0 || n < 0 ||
	    (unsigned long long)n > lim->bulk_max) {
		*err = "Protocol error: invalid bulk length";
		return RESP_ERR;
	}
	size_t start = eol + 2;
	if (len - start < (size_t)n + 2)
		return RESP_MORE;
	if (buf[start + n] != '\r' || buf[start + n + 1] != '\n') {
		*err = "Protocol error: bulk argument not followed by CRLF";
		return RESP_ERR;
	}
	if (push_arg(p, start, (size_t)n) < 0)
		return RESP_NOMEM;
	p->pos = start + (size_t)n + 2;
	return RESP_CMD;
}

int resp_parse(struct resp_parser *p, const char *buf, size_t len, const struct resp_limits *lim,
               size_t *used, const char **err)
{
	if (len == 0)
		return RESP_MORE;
	if (p->nargs < 0) {
		if (buf[0] != '*')
			return parse_inline(p, buf, len, lim, used, err);
		int r = parse_count(p, buf, len, lim, err);
		if (r != RESP_CMD)
			return r;
	}
	while ((long long)p->argc < p->nargs) {
		int r = parse_bulk(p, buf, len, lim, err);
		if (r != RESP_CMD)
			return r;
	}
	*used = p->pos;
	return RESP_CMD;
}
