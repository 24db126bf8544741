/*
 * qmp.c - reads one control-socket command line ({"execute": NAME,
 * "arguments": {...}, "id": ANY}) with a strict recursive-descent JSON
 * parser that validates the whole value.  Bounded depth and lengths: any
 * input gives either a command or an error message, never a crash.
 * (Replies are written with the tools' JSON writer, cli/json.h.)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qmp.h"

#define QMP_MAX_DEPTH 32

struct jp {
	const char *s;
	size_t len, pos;
	char *err;
	size_t err_len;
	int failed;
};

static void jerr(struct jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jerr(struct jp *p, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	char m[160];
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->err_len, "%s at byte %zu", m, p->pos);
}

static void ws(struct jp *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\r' ||
	                           p->s[p->pos] == '\n'))
		p->pos++;
}

static int peek(struct jp *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int read_hex4(struct jp *p, unsigned *out)
{
	if (p->len - p->pos < 4) {
		jerr(p, "truncated \\u escape");
		return -1;
	}
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval((unsigned char)p->s[p->pos + i]);
		if (h < 0) {
			jerr(p, "bad \\u escape");
			return -1;
		}
		v = v << 4 | (unsigned)h;
	}
	p->pos += 4;
	*out = v;
	return 0;
}

/* A code point as UTF-8 into buf; returns its length. */
static size_t utf8(unsigned cp, char *buf)
{
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | cp >> 6);
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | cp >> 18);
	buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	buf[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The code point of a \u escape (after the "\u"), a surrogate pair joined;
 * -1 on a bad one. */
static int unicode_escape(struct jp *p, unsigned *cp)
{
	if (read_hex4(p, cp) < 0)
		return -1;
	if (*cp >= 0xdc00 && *cp <= 0xdfff) {
		jerr(p, "lone surrogate in \\u escape");
		return -1;
	}
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	unsigned lo;
	if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
		jerr(p, "lone surrogate in \\u escape");
		return -1;
	}
	p->pos += 2;
	if (read_hex4(p, &lo) < 0)
		return -1;
	if (lo < 0xdc00 || lo > 0xdfff) {
		jerr(p, "bad surrogate pair");
		return -1;
	}
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	return 0;
}

/* The bytes of one escape (after the backslash) into buf; their count, or
 * -1.  A NUL is refused when the string is kept (nul_ok false). */
static int escape(struct jp *p, char *buf, bool nul_ok)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	int e = peek(p);
	if (e < 0) {
		jerr(p, "unterminated string");
		return -1;
	}
	p->pos++;
	const char *k = e ? strchr(from, e) : NULL;
	if (k) {
		buf[0] = to[k - from];
		return 1;
	}
	if (e != 'u') {
		jerr(p, "bad escape \\%c", e);
		return -1;
	}
	unsigned cp;
	if (unicode_escape(p, &cp) < 0)
		return -1;
	if (cp == 0 && !nul_ok) {
		jerr(p, "NUL in a string");
		return -1;
	}
	return (int)utf8(cp, buf);
}

/* Parses a string; stores up to cap-1 decoded bytes in out (if not NULL).
 * Returns 0, or -1 (also when the decoded string does not fit, or holds
 * a NUL, when out is given). */
static int parse_string(struct jp *p, char *out, size_t cap)
{
	size_t n = 0;
	if (peek(p) != '"') {
		jerr(p, "expected a string");
		return -1;
	}
	p->pos++;
	for (;;) {
		int c = peek(p);
		if (c < 0) {
			jerr(p, "unterminated string");
			return -1;
		}
		p->pos++;
		if (c == '"')
			break;
		if (c < 0x20) {
			jerr(p, "control character in a string");
			return -1;
		}
		char buf[4] = { (char)c };
		int bl = c == '\\' ? escape(p, buf, out == NULL) : 1;
		if (bl < 0)
			return -1;
		if (out) {
			if (n + (size_t)bl >= cap) {
				jerr(p, "string too long (at most %zu bytes)", cap - 1);
				return -1;
			}
			memcpy(out + n, buf, (size_t)bl);
			n += (size_t)bl;
		}
	}
	if (out)
		out[n] = 0;
	return 0;
}

static int parse_value(struct jp *p, int depth);

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* One or more digits. */
static int digits(struct jp *p)
{
	if (!is_digit(peek(p))) {
		jerr(p, "bad number");
		return -1;
	}
	while (is_digit(peek(p)))
		p->pos++;
	return 0;
}

static int parse_number(struct jp *p)
{
	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0')
		p->pos++;
	else if (digits(p) < 0)
		return -1;
	if (peek(p) == '.') {
		p->pos++;
		if (digits(p) < 0)
			return -1;
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (digits(p) < 0)
			return -1;
	}
	return 0;
}

static int parse_word(struct jp *p, const char *w)
{
	size_t l = strlen(w);
	if (p->len - p->pos < l || memcmp(p->s + p->pos, w, l) != 0) {
		jerr(p, "unexpected character");
		return -1;
	}
	p->pos += l;
	return 0;
}

/* The items of an object or array, from its opening bracket to `close`;
 * item() parses one.  0 or -1. */
static int parse_items(struct jp *p, char close, int (*item)(struct jp *p, void *ctx), void *ctx)
{
	p->pos++; /* the opening bracket */
	ws(p);
	if (peek(p) == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		if (item(p, ctx) < 0)
			return -1;
		ws(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == close) {
			p->pos++;
			return 0;
		}
		jerr(p, "expected ',' or '%c'", close);
		return -1;
	}
}

/* An object; for each member, `member` (if not NULL) is called with the
 * key and may consume the value itself (returns 1) or leave it (0). */
typedef int (*member_fn)(struct jp *p, const char *key, void *ctx, int depth);

struct object {
	int depth;
	member_fn member;
	void *ctx;
};

/* A key; one too long to keep is legal JSON, skipped (key ""). */
static int parse_key(struct jp *p, char *key, size_t cap)
{
	size_t kpos = p->pos;
	if (parse_string(p, key, cap) == 0)
		return 0;
	if (!p->failed || !strstr(p->err, "too long"))
		return -1;
	p->failed = 0;
	p->pos = kpos;
	key[0] = 0;
	return parse_string(p, NULL, 0);
}

static int parse_member(struct jp *p, void *arg)
{
	const struct object *o = arg;
	char key[64];
	ws(p);
	if (parse_key(p, key, sizeof(key)) < 0)
		return -1;
	ws(p);
	if (peek(p) != ':') {
		jerr(p, "expected ':'");
		return -1;
	}
	p->pos++;
	ws(p);
	int used = o->member && key[0] ? o->member(p, key, o->ctx, o->depth + 1) : 0;
	if (used < 0)
		return -1;
	return used ? 0 : parse_value(p, o->depth + 1);
}

static int parse_object(struct jp *p, int depth, member_fn member, void *ctx)
{
	if (depth > QMP_MAX_DEPTH) {
		jerr(p, "nested too deeply");
		return -1;
	}
	struct object o = { depth, member, ctx };
	return parse_items(p, '}', parse_member, &o);
}

static int parse_element(struct jp *p, void *depth)
{
	return parse_value(p, *(int *)depth + 1);
}

static int parse_value(struct jp *p, int depth)
{
	if (depth > QMP_MAX_DEPTH) {
		jerr(p, "nested too deeply");
		return -1;
	}
	ws(p);
	int c = peek(p);
	switch (c) {
	case '{':
		return parse_object(p, depth, NULL, NULL);
	case '[':
		return parse_items(p, ']', parse_element, &depth);
	case '"':
		return parse_string(p, NULL, 0);
	case 't':
		return parse_word(p, "true");
	case 'f':
		return parse_word(p, "false");
	case 'n':
		return parse_word(p, "null");
	case -1:
		jerr(p, "unexpected end of input");
		return -1;
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return parse_number(p);
		jerr(p, "unexpected character");
		return -1;
	}
}

/* A member whose value must be a string, decoded into out; 1, or -1. */
static int string_member(struct jp *p, const char *key, char *out, size_t cap, bool *has)
{
	if (peek(p) != '"') {
		jerr(p, "\"%s\" must be a string", key);
		return -1;
	}
	if (parse_string(p, out, cap) < 0)
		return -1;
	if (has)
		*has = true;
	return 1;
}

static int args_member(struct jp *p, const char *key, void *ctx, int depth)
{
	struct qmp_cmd *cmd = ctx;
	(void)depth;
	if (strcmp(key, "path") == 0)
		return string_member(p, key, cmd->path, sizeof(cmd->path), &cmd->has_path);
	if (strcmp(key, "method") == 0)
		return string_member(p, key, cmd->method, sizeof(cmd->method), &cmd->has_method);
	return 0;
}

static int top_member(struct jp *p, const char *key, void *ctx, int depth)
{
	struct qmp_cmd *cmd = ctx;
	if (strcmp(key, "execute") == 0)
		return string_member(p, key, cmd->execute, sizeof(cmd->execute), NULL);
	if (strcmp(key, "arguments") == 0) {
		if (peek(p) != '{') {
			jerr(p, "\"arguments\" must be an object");
			return -1;
		}
		return parse_object(p, depth, args_member, cmd) < 0 ? -1 : 1;
	}
	if (strcmp(key, "id") == 0) {
		size_t start = p->pos;
		if (parse_value(p, depth) < 0)
			return -1;
		size_t l = p->pos - start;
		if (l >= sizeof(cmd->id)) {
			jerr(p, "\"id\" too long");
			return -1;
		}
		memcpy(cmd->id, p->s + start, l);
		cmd->id[l] = 0;
		return 1;
	}
	return 0;
}

int qmp_parse(const char *line, size_t len, struct qmp_cmd *cmd, char *err, size_t err_len)
{
	struct jp p = {.s = line, .len = len, .err = err, .err_len = err_len};
	memset(cmd, 0, sizeof(*cmd));
	ws(&p);
	if (peek(&p) != '{') {
		jerr(&p, "expected a JSON object");
		return -EINVAL;
	}
	if (parse_object(&p, 0, top_member, cmd) < 0)
		return -EINVAL;
	ws(&p);
	if (p.pos != p.len) {
		jerr(&p, "trailing characters after the object");
		return -EINVAL;
	}
	if (!cmd->execute[0]) {
		snprintf(err, err_len, "missing \"execute\"");
		return -EINVAL;
	}
	return 0;
}
