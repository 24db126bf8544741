/*
 * commands.c - the command table and the string commands.  Replies, error
 * texts included, are redis-server's for the same request, so that
 * redis-cli, redis-benchmark and client libraries see no difference.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kv.h"

#define OOM_MSG "OOM command not allowed when used memory > 'maxmemory'."
#define NOT_INT "ERR value is not an integer or out of range"

typedef void cmd_fn(struct server *s, struct client *c, struct kv_arg *argv, size_t argc);

struct kv_command {
	const char *name;
	int arity;                   /* > 0 exactly, < 0 at least -arity       */
	bool write;                  /* counts as a change for SAVE/--save     */
	cmd_fn *fn;
};

bool kv_arg_is(const struct kv_arg *a, const char *word)
{
	return strlen(word) == a->n && !strncasecmp(a->p, word, a->n);
}

int kv_arg_ll(const struct kv_arg *a, long long *out)
{
	const char *p = a->p;
	size_t n = a->n;
	if (n == 0 || n > 20)
		return -1;
	if (n == 1 && p[0] == '0') {
		*out = 0;
		return 0;
	}
	bool neg = p[0] == '-';
	size_t i = neg ? 1 : 0;
	if (i == n || p[i] < '1' || p[i] > '9')
		return -1;
	unsigned long long v = 0;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (unsigned long long)LLONG_MAX + 1)
			return -1;
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	} else {
		if (v > (unsigned long long)LLONG_MAX)
			return -1;
		*out = (long long)v;
	}
	return 0;
}

static void arity_error(struct client *c, const char *name)
{
	reply_errorf(&c->out, "ERR wrong number of arguments for '%s' command", name);
}

static void oom(struct server *s, struct client *c)
{
	s->oom_errors++;
	reply_error(&c->out, OOM_MSG);
}

static void cmd_ping(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	if (argc > 2)
		return arity_error(c, "ping");
	if (argc == 2)
		reply_bulk(&c->out, argv[1].p, argv[1].n);
	else
		reply_simple(&c->out, "PONG");
}

static void cmd_echo(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	reply_bulk(&c->out, argv[1].p, argv[1].n);
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] */
struct set_opts {
	bool nx, xx, get, keepttl;
	int64_t expire_at;           /* unix ms, 0 none                        */
};

static int parse_set_opts(struct client *c, struct kv_arg *argv, size_t argc, struct set_opts *o)
{
	bool have_exp = false;
	for (size_t i = 3; i < argc; i++) {
		struct kv_arg *a = &argv[i];
		bool ex = kv_arg_is(a, "EX"), px = kv_arg_is(a, "PX");
		bool exat = kv_arg_is(a, "EXAT"), pxat = kv_arg_is(a, "PXAT");
		if (kv_arg_is(a, "NX") && !o->xx) {
			o->nx = true;
		} else if (kv_arg_is(a, "XX") && !o->nx) {
			o->xx = true;
		} else if (kv_arg_is(a, "GET")) {
			o->get = true;
		} else if (kv_arg_is(a, "KEEPTTL") && !have_exp) {
			o->keepttl = true;
		} else if ((ex || px || exat || pxat) && !have_exp && !o->keepttl && i + 1 < argc) {
			long long v;
			if (kv_arg_ll(&argv[++i], &v) < 0) {
				reply_error(&c->out, NOT_INT);
				return -1;
			}
			long long mul = ex || exat ? 1000 : 1;
			if (v <= 0 || v > LLONG_MAX / 1000 / 2) {
				reply_error(&c->out, "ERR invalid expire time in 'set' command");
				return -1;
			}
			o->expire_at = (int64_t)(v * mul) + (ex || px ? dict_now_ms() : 0);
			have_exp = true;
		} else {
			reply_error(&c->out, "ERR syntax error");
			return -1;
		}
	}
	return 0;
}

static void cmd_set(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	struct set_opts o = { 0 };
	if (parse_set_opts(c, argv, argc, &o) < 0)
		return;
	struct kv_entry *old = dict_find(s->db, argv[1].p, argv[1].n);
	if ((o.nx && old) || (o.xx && !old)) {
		if (o.get && old)
			return reply_bulk(&c->out, entry_val(old), old->vlen);
		return reply_nil(&c->out);
	}
	/* GET answers with the old value, which the write may free: it goes
	 * into the reply first, and is taken back if the write fails. */
	size_t mark = c->out.len;
	if (o.get) {
		if (old)
			reply_bulk(&c->out, entry_val(old), old->vlen);
		else
			reply_nil(&c->out);
	}
	struct kv_entry *e = dict_set(s->db, argv[1].p, argv[1].n, argv[2].p, argv[2].n, o.keepttl);
	if (!e) {
		if (!c->out.failed)
			c->out.len = mark;
		return oom(s, c);
	}
	if (o.expire_at)
		dict_set_expire(s->db, e, o.expire_at);
	if (!o.get)
		reply_ok(&c->out);
}

static void cmd_get(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	struct kv_entry *e = dict_find(s->db, argv[1].p, argv[1].n);
	if (!e) {
		s->misses++;
		return reply_nil(&c->out);
	}
	s->hits++;
	reply_bulk(&c->out, entry_val(e), e->vlen);
}

static void cmd_del(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	long long n = 0;
	for (size_t i = 1; i < argc; i++)
		n += dict_del(s->db, argv[i].p, argv[i].n);
	reply_int(&c->out, n);
}

static void cmd_exists(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	long long n = 0;
	for (size_t i = 1; i < argc; i++)
		n += dict_find(s->db, argv[i].p, argv[i].n) != NULL;
	reply_int(&c->out, n);
}

static void incr_by(struct server *s, struct client *c, const struct kv_arg *key, long long by)
{
	struct kv_entry *e = dict_find(s->db, key->p, key->n);
	long long v = 0;
	if (e) {
		struct kv_arg cur = { entry_val(e), e->vlen };
		if (kv_arg_ll(&cur, &v) < 0)
			return reply_error(&c->out, NOT_INT);
	}
	if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v))
		return reply_error(&c->out, "ERR increment or decrement would overflow");
	v += by;
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%lld", v);
	if (!dict_set(s->db, key->p, key->n, buf, (size_t)n, true))
		return oom(s, c);
	reply_int(&c->out, v);
}

static void cmd_incr(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	incr_by(s, c, &argv[1], 1);
}

static void cmd_decr(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	incr_by(s, c, &argv[1], -1);
}

static void cmd_incrby(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	long long by;
	if (kv_arg_ll(&argv[2], &by) < 0)
		return reply_error(&c->out, NOT_INT);
	incr_by(s, c, &argv[1], by);
}

static void cmd_decrby(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	long long by;
	if (kv_arg_ll(&argv[2], &by) < 0 || by == LLONG_MIN)
		return reply_error(&c->out, by == LLONG_MIN ? "ERR decrement would overflow" : NOT_INT);
	incr_by(s, c, &argv[1], -by);
}

static void cmd_mset(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	if (argc % 2 == 0)
		return arity_error(c, "mset");
	for (size_t i = 1; i < argc; i += 2)
		if (!dict_set(s->db, argv[i].p, argv[i].n, argv[i + 1].p, argv[i + 1].n, false))
			return oom(s, c);
	reply_ok(&c->out);
}

static void cmd_mget(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	reply_array(&c->out, argc - 1);
	for (size_t i = 1; i < argc; i++) {
		struct kv_entry *e = dict_find(s->db, argv[i].p, argv[i].n);
		if (e)
			reply_bulk(&c->out, entry_val(e), e->vlen);
		else
			reply_nil(&c->out);
	}
}

static void cmd_append(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	struct kv_entry *e = dict_find(s->db, argv[1].p, argv[1].n);
	if (!e) {
		e = dict_set(s->db, argv[1].p, argv[1].n, argv[2].p, argv[2].n, false);
	} else {
		size_t old = e->vlen;
		if ((e = dict_resize(s->db, e, old + argv[2].n)))
			memcpy(entry_val(e) + old, argv[2].p, argv[2].n);
	}
	if (!e)
		return oom(s, c);
	reply_int(&c->out, e->vlen);
}

static void cmd_strlen(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	struct kv_entry *e = dict_find(s->db, argv[1].p, argv[1].n);
	reply_int(&c->out, e ? e->vlen : 0);
}

static void cmd_dbsize(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	reply_int(&c->out, (long long)dict_size(s->db));
}

static void cmd_flushall(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	if (argc > 2 || (argc == 2 && !kv_arg_is(&argv[1], "ASYNC") && !kv_arg_is(&argv[1], "SYNC")))
		return reply_error(&c->out, "ERR syntax error");
	arena_init(s->db, s->db->size, s->db->dict.seed);
	reply_ok(&c->out);
}

static void cmd_select(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	long long db;
	if (kv_arg_ll(&argv[1], &db) < 0)
		return reply_error(&c->out, NOT_INT);
	if (db != 0)
		return reply_error(&c->out, "ERR DB index is out of range");
	reply_ok(&c->out);
}

static void cmd_command(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	/* redis-cli asks for command docs to show hints: there are none. */
	reply_array(&c->out, 0);
}

static void cmd_quit(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	reply_ok(&c->out);
	c->closing = true;
}

static const struct kv_command commands[] = {
	{ "get", 2, false, cmd_get },
	{ "set", -3, true, cmd_set },
	{ "incr", 2, true, cmd_incr },
	{ "decr", 2, true, cmd_decr },
	{ "incrby", 3, true, cmd_incrby },
	{ "decrby", 3, true, cmd_decrby },
	{ "mset", -3, true, cmd_mset },
	{ "mget", -2, false, cmd_mget },
	{ "del", -2, true, cmd_del },
	{ "exists", -2, false, cmd_exists },
	{ "append", 3, true, cmd_append },
	{ "strlen", 2, false, cmd_strlen },
	{ "ping", -1, false, cmd_ping },
	{ "echo", 2, false, cmd_echo },
	{ "dbsize", 1, false, cmd_dbsize },
	{ "flushall", -1, true, cmd_flushall },
	{ "keys", 2, false, kv_cmd_keys },
	{ "scan", -2, false, kv_cmd_scan },
	{ "ttl", 2, false, kv_cmd_ttl },
	{ "pttl", 2, false, kv_cmd_pttl },
	{ "expire", -3, true, kv_cmd_expire },
	{ "pexpire", -3, true, kv_cmd_pexpire },
	{ "persist", 2, true, kv_cmd_persist },
	{ "select", 2, false, cmd_select },
	{ "info", -1, false, kv_cmd_info },
	{ "config", -2, false, kv_cmd_config },
	{ "save", 1, false, kv_cmd_save },
	{ "bgsave", -1, false, kv_cmd_bgsave },
	{ "lastsave", 1, false, kv_cmd_lastsave },
	{ "shutdown", -1, false, kv_cmd_shutdown },
	{ "command", -1, false, cmd_command },
	{ "quit", -1, false, cmd_quit },
};

static void unknown_command(struct client *c, struct kv_arg *argv, size_t argc)
{
	char args[256];
	size_t n = 0;
	args[0] = 0;
	for (size_t i = 1; i < argc && n < 128; i++) {
		int w = snprintf(args + n, sizeof(args) - n, "'%.*s' ", (int)(argv[i].n < 128 - n ? argv[i].n : 128 - n),
		                 argv[i].p);
		if (w > 0)
			n += (size_t)w < sizeof(args) - n ? (size_t)w : sizeof(args) - n - 1;
	}
	reply_errorf(&c->out, "ERR unknown command '%.*s', with args beginning with: %s",
	             (int)(argv[0].n < 128 ? argv[0].n : 128), argv[0].p, args);
}

void kv_dispatch(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	s->total_cmds++;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		const struct kv_command *k = &commands[i];
		if (!kv_arg_is(&argv[0], k->name))
			continue;
		if ((k->arity > 0 && argc != (size_t)k->arity) || (k->arity < 0 && argc < (size_t)-k->arity))
			return arity_error(c, k->name);
		k->fn(s, c, argv, argc);
		if (k->write)
			s->ps.dirty++;
		return;
	}
	unknown_command(c, argv, argc);
}
