/*
 * keyspace.c - commands over the key space rather than one value: KEYS and
 * SCAN (with Redis's glob patterns), TTL/PTTL, EXPIRE/PEXPIRE, PERSIST.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define NOT_INT "ERR value is not an integer or out of range"

/* Redis's glob: * ? [set] [^set] [a-z] and \ escapes, on byte strings. */
bool kv_glob_match(const char *p, size_t pn, const char *s, size_t sn, int depth)
{
	if (depth > 64)
		return false;
	while (pn) {
		switch (*p) {
		case '*':
			while (pn > 1 && p[1] == '*')
				p++, pn--;
			if (pn == 1)
				return true;
			for (size_t i = 0; i <= sn; i++)
				if (kv_glob_match(p + 1, pn - 1, s + i, sn - i, depth + 1))
					return true;
			return false;
		case '?':
			if (!sn)
				return false;
			s++, sn--;
			break;
		case '[': {
			if (!sn)
				return false;
			p++, pn--;
			bool neg = pn && *p == '^', match = false;
			if (neg)
				p++, pn--;
			while (pn && *p != ']') {
				if (*p == '\\' && pn >= 2) {
					p++, pn--;
					match |= *p == *s;
				} else if (pn >= 3 && p[1] == '-') {
					char lo = p[0], hi = p[2];
					if (lo > hi) {
						char t = lo;
						lo = hi;
						hi = t;
					}
					match |= *s >= lo && *s <= hi;
					p += 2, pn -= 2;
				} else {
					match |= *p == *s;
				}
				p++, pn--;
			}
			if (neg)
				match = !match;
			if (!match)
				return false;
			s++, sn--;
			if (!pn)
				return false;
			break;
		}
		case '\\':
			if (pn >= 2)
				p++, pn--;
			/* fall through */
		default:
			if (!sn || *p != *s)
				return false;
			s++, sn--;
			break;
		}
		p++, pn--;
	}
	return sn == 0;
}

struct collect {
	struct kv_entry **v;
	size_t n, cap;
	const struct kv_arg *pattern;
	bool failed;
};

static void collect_one(struct kv_entry *e, void *ctx)
{
	struct collect *k = ctx;
	if (k->failed || (k->pattern && !kv_glob_match(k->pattern->p, k->pattern->n, e->data, e->klen, 0)))
		return;
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 64;
		struct kv_entry **nv = realloc(k->v, nc * sizeof(*nv));
		if (!nv) {
			k->failed = true;
			return;
		}
		k->v = nv;
		k->cap = nc;
	}
	k->v[k->n++] = e;
}

static int collect_fe(struct kv_entry *e, void *ctx)
{
	collect_one(e, ctx);
	return ((struct collect *)ctx)->failed;
}

static void reply_keys(struct client *c, struct collect *k)
{
	reply_array(&c->out, k->n);
	for (size_t i = 0; i < k->n; i++)
		reply_bulk(&c->out, k->v[i]->data, k->v[i]->klen);
}

void kv_cmd_keys(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	struct collect k = { .pattern = &argv[1] };
	bool all = argv[1].n == 1 && argv[1].p[0] == '*';
	if (all)
		k.pattern = NULL;
	dict_foreach(s->db, collect_fe, &k);
	if (k.failed)
		reply_error(&c->out, "ERR out of memory");
	else
		reply_keys(c, &k);
	free(k.v);
}

void kv_cmd_scan(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	long long cursor, count = 10;
	if (kv_arg_ll(&argv[1], &cursor) < 0)
		return reply_error(&c->out, "ERR invalid cursor");
	struct collect k = { 0 };
	for (size_t i = 2; i < argc; i += 2) {
		if (i + 1 >= argc)
			return reply_error(&c->out, "ERR syntax error");
		if (kv_arg_is(&argv[i], "MATCH")) {
			k.pattern = &argv[i + 1];
		} else if (kv_arg_is(&argv[i], "COUNT")) {
			if (kv_arg_ll(&argv[i + 1], &count) < 0)
				return reply_error(&c->out, NOT_INT);
			if (count < 1)
				return reply_error(&c->out, "ERR syntax error");
		} else if (!kv_arg_is(&argv[i], "TYPE")) {
			return reply_error(&c->out, "ERR syntax error");
		}
	}
	unsigned n = count > 100000 ? 100000 : (unsigned)count;
	uint64_t next = dict_scan(s->db, (uint64_t)cursor, n, collect_one, &k);
	if (k.failed) {
		free(k.v);
		return reply_error(&c->out, "ERR out of memory");
	}
	char cur[24];
	int cn = snprintf(cur, sizeof(cur), "%llu", (unsigned long long)next);
	reply_array(&c->out, 2);
	reply_bulk(&c->out, cur, (size_t)cn);
	reply_keys(c, &k);
	free(k.v);
}

static void ttl(struct server *s, struct client *c, const struct kv_arg *key, bool ms)
{
	struct kv_entry *e = dict_find(s->db, key->p, key->n);
	if (!e)
		return reply_int(&c->out, -2);
	if (!e->expire_ms)
		return reply_int(&c->out, -1);
	int64_t left = e->expire_ms - dict_now_ms();
	if (left < 0)
		left = 0;
	reply_int(&c->out, ms ? left : (left + 500) / 1000);
}

void kv_cmd_ttl(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	ttl(s, c, &argv[1], false);
}

void kv_cmd_pttl(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	ttl(s, c, &argv[1], true);
}

/* EXPIRE key seconds [NX|XX|GT|LT], in units of `unit` ms. */
static void expire(struct server *s, struct client *c, struct kv_arg *argv, size_t argc, long long unit,
                   const char *name)
{
	long long v;
	if (kv_arg_ll(&argv[2], &v) < 0)
		return reply_error(&c->out, NOT_INT);
	bool nx = false, xx = false, gt = false, lt = false;
	for (size_t i = 3; i < argc; i++) {
		if (kv_arg_is(&argv[i], "NX"))
			nx = true;
		else if (kv_arg_is(&argv[i], "XX"))
			xx = true;
		else if (kv_arg_is(&argv[i], "GT"))
			gt = true;
		else if (kv_arg_is(&argv[i], "LT"))
			lt = true;
		else
			return reply_errorf(&c->out, "ERR Unsupported option %.*s", (int)argv[i].n, argv[i].p);
	}
	if ((nx && (xx || gt || lt)) || (gt && lt))
		return reply_error(&c->out,
		                   "ERR NX and XX, GT or LT options at the same time are not compatible");
	int64_t now = dict_now_ms();
	if (v > (LLONG_MAX - now) / unit || v < (LLONG_MIN + now) / unit)
		return reply_errorf(&c->out, "ERR invalid expire time in '%s' command", name);
	int64_t at = now + v * unit;
	struct kv_entry *e = dict_find(s->db, argv[1].p, argv[1].n);
	if (!e)
		return reply_int(&c->out, 0);
	int64_t cur = e->expire_ms;   /* 0: never, which GT/LT take as infinite */
	if ((nx && cur) || (xx && !cur) || (gt && (!cur || at <= cur)) || (lt && cur && at >= cur))
		return reply_int(&c->out, 0);
	if (at <= now) {
		dict_del(s->db, argv[1].p, argv[1].n);
		return reply_int(&c->out, 1);
	}
	dict_set_expire(s->db, e, at);
	reply_int(&c->out, 1);
}

void kv_cmd_expire(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	expire(s, c, argv, argc, 1000, "expire");
}

void kv_cmd_pexpire(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	expire(s, c, argv, argc, 1, "pexpire");
}

void kv_cmd_persist(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	struct kv_entry *e = dict_find(s->db, argv[1].p, argv[1].n);
	if (!e || !e->expire_ms)
		return reply_int(&c->out, 0);
	dict_set_expire(s->db, e, 0);
	reply_int(&c->out, 1);
}
