/*
 * admin.c - the server's own commands: INFO (Redis's section and field
 * names where they mean the same thing), CONFIG GET/SET for what clients and
 * redis-benchmark ask, SAVE, BGSAVE, LASTSAVE, SHUTDOWN.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/text.h"
#include "kv.h"

static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long pages = 0, resident = 0;
	if (f) {
		if (fscanf(f, "%llu %llu", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static bool want(const char *section, const struct kv_arg *sel)
{
	return !sel || kv_arg_is(sel, section) || kv_arg_is(sel, "all") || kv_arg_is(sel, "everything") ||
	       kv_arg_is(sel, "default");
}

static void info_server(struct server *s, struct cli_text *t)
{
	cli_text_add(t, "# Server\r\nredis_version:7.0.15\r\nbgsnap_kv_version:%s\r\nredis_mode:standalone\r\n",
	    bgsnap_version());
	cli_text_add(t, "arch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:%ld\r\ntcp_port:%d\r\n", (long)getpid(),
	    s->cfg.port);
	cli_text_add(t, "uptime_in_seconds:%llu\r\n\r\n", (unsigned long long)(time(NULL) - (time_t)s->start_unix));
	cli_text_add(t, "# Clients\r\nconnected_clients:%llu\r\n\r\n", (unsigned long long)s->nclients);
}

static void info_memory(struct server *s, struct cli_text *t)
{
	cli_text_add(t, "# Memory\r\nused_memory:%llu\r\nused_memory_rss:%llu\r\nmaxmemory:%zu\r\n",
	    (unsigned long long)s->db->used, (unsigned long long)rss_bytes(), s->cfg.maxmemory);
	cli_text_add(t, "maxmemory_policy:noeviction\r\narena_base:0x%llx\r\narena_bytes:%llu\r\narena_high_water:%llu\r\n\r\n",
	    (unsigned long long)ARENA_BASE, (unsigned long long)s->db->size, (unsigned long long)s->db->bump);
}

static void info_persistence(struct server *s, struct cli_text *t)
{
	const struct persist *p = &s->ps;
	struct bgsnap_stats st = p->last;
	long long cur = -1;
	if (p->eng) {
		bgsnap_get_stats(p->eng, &st, sizeof st);
		cur = (long long)((uint64_t)dict_now_ms() - p->started_ms) / 1000;
	}
	cli_text_add(t, "# Persistence\r\nloading:0\r\nasync_loading:%d\r\n", p->lazy ? 1 : 0);
	cli_text_add(t, "rdb_changes_since_last_save:%llu\r\nrdb_bgsave_in_progress:%d\r\nrdb_last_save_time:%lld\r\n",
	    (unsigned long long)p->dirty, p->eng ? 1 : 0, (long long)p->lastsave);
	cli_text_add(t, "rdb_last_bgsave_status:%s\r\nrdb_last_bgsave_time_sec:%lld\r\nrdb_current_bgsave_time_sec:%lld\r\n",
	    p->last_ok ? "ok" : "err", p->last_save_ms ? (long long)(p->last_save_ms / 1000) : -1LL, cur);
	cli_text_add(t, "rdb_last_cow_size:%llu\r\naof_enabled:0\r\n", (unsigned long long)p->last.extra_mem_peak);
	cli_text_add(t, "bgsnap_method:%s\r\nbgsnap_last_method:%s\r\n", bgsnap_method_name(s->cfg.method),
	    bgsnap_method_name(p->last_method));
	cli_text_add(t, "bgsnap_last_start_us:%llu\r\nbgsnap_last_prewp_us:%llu\r\n", (unsigned long long)p->start_call_us,
	    (unsigned long long)p->last.prewp_us);
	cli_text_add(t, "bgsnap_last_pause_us:%llu\r\nbgsnap_last_wp_us:%llu\r\nbgsnap_last_save_ms:%llu\r\n",
	    (unsigned long long)p->last.pause_us, (unsigned long long)p->last.wp_us,
	    (unsigned long long)p->last_save_ms);
	cli_text_add(t, "bgsnap_last_bytes_written:%llu\r\nbgsnap_last_pages_faulted:%llu\r\nbgsnap_copybuf_peak:%llu\r\n",
	    (unsigned long long)p->last.bytes_written, (unsigned long long)p->last.pages_faulted,
	    (unsigned long long)p->last.copybuf_peak);
	cli_text_add(t, "bgsnap_current_pages_saved:%llu\r\nbgsnap_current_pages_total:%llu\r\n",
	    (unsigned long long)(p->eng ? st.pages_saved : 0), (unsigned long long)(p->eng ? st.pages_total : 0));
	cli_text_add(t, "bgsnap_restored:%d\r\nbgsnap_restore_in_progress:%d\r\nbgsnap_restore_usable_us:%llu\r\n",
	    p->restored ? 1 : 0, p->lazy ? 1 : 0, (unsigned long long)p->restore_usable_us);
	cli_text_add(t, "bgsnap_restore_total_us:%llu\r\n\r\n", (unsigned long long)p->restore_total_us);
}

static void info_stats(struct server *s, struct cli_text *t)
{
	cli_text_add(t, "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n",
	    (unsigned long long)s->total_conns, (unsigned long long)s->total_cmds);
	cli_text_add(t, "rejected_connections:%llu\r\nexpired_keys:%llu\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n",
	    (unsigned long long)s->rejected_conns, (unsigned long long)dict_expired_keys,
	    (unsigned long long)s->hits, (unsigned long long)s->misses);
	cli_text_add(t, "latest_fork_usec:%llu\r\noom_errors:%llu\r\nprotocol_errors:%llu\r\n\r\n",
	    (unsigned long long)s->ps.start_call_us, (unsigned long long)s->oom_errors,
	    (unsigned long long)s->proto_errors);
}

void kv_cmd_info(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	enum { INFO_MAX = 8192 };
	char *buf = malloc(INFO_MAX);
	if (!buf)
		return reply_error(&c->out, "ERR out of memory");
	struct cli_text text = { .buf = buf, .cap = INFO_MAX }, *t = &text;
	const struct kv_arg *sel = argc > 1 ? &argv[1] : NULL;
	if (want("server", sel) || want("clients", sel))
		info_server(s, t);
	if (want("memory", sel))
		info_memory(s, t);
	if (want("persistence", sel))
		info_persistence(s, t);
	if (want("stats", sel))
		info_stats(s, t);
	if (want("keyspace", sel)) {
		cli_text_add(t, "# Keyspace\r\n");
		if (dict_size(s->db))
			cli_text_add(t, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n", (unsigned long long)dict_size(s->db),
			    (unsigned long long)s->db->dict.expires);
	}
	reply_bulk(&c->out, t->buf, t->len);
	free(buf);
}

/* CONFIG GET's names and their values as text. */
static void config_pairs(struct server *s, const struct kv_arg *pat, struct outbuf *o, size_t *count, bool emit)
{
	char save[32], port[16], mm[24], bulk[24];
	snprintf(save, sizeof(save), s->cfg.save_seconds ? "%u 1" : "", s->cfg.save_seconds);
	snprintf(port, sizeof(port), "%d", s->cfg.port);
	snprintf(mm, sizeof(mm), "%zu", s->cfg.maxmemory);
	snprintf(bulk, sizeof(bulk), "%zu", s->cfg.limits.bulk_max);
	const char *pairs[][2] = {
		{ "save", save }, { "appendonly", "no" }, { "port", port }, { "bind", s->cfg.bind },
		{ "dir", s->cfg.dir }, { "dbfilename", s->cfg.dbfilename }, { "maxmemory", mm },
		{ "maxmemory-policy", "noeviction" }, { "databases", "1" }, { "proto-max-bulk-len", bulk },
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		if (!kv_glob_match(pat->p, pat->n, pairs[i][0], strlen(pairs[i][0]), 0))
			continue;
		if (emit) {
			reply_bulk(o, pairs[i][0], strlen(pairs[i][0]));
			reply_bulk(o, pairs[i][1], strlen(pairs[i][1]));
		}
		(*count)++;
	}
}

void kv_cmd_config(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	if (kv_arg_is(&argv[1], "GET") && argc >= 3) {
		size_t n = 0;
		for (size_t i = 2; i < argc; i++)
			config_pairs(s, &argv[i], &c->out, &n, false);
		reply_array(&c->out, n * 2);
		for (size_t i = 2; i < argc; i++)
			config_pairs(s, &argv[i], &c->out, &n, true);
		return;
	}
	if (kv_arg_is(&argv[1], "RESETSTAT") && argc == 2) {
		s->total_cmds = s->total_conns = s->hits = s->misses = s->oom_errors = s->proto_errors = 0;
		return reply_ok(&c->out);
	}
	if (kv_arg_is(&argv[1], "SET") && argc == 4 && kv_arg_is(&argv[2], "save")) {
		/* "" or "SECONDS CHANGES": the period is kept, the count is not. */
		long long sec = 0;
		struct kv_arg first = argv[3];
		const char *sp = memchr(first.p, ' ', first.n);
		if (sp)
			first.n = (size_t)(sp - first.p);
		if (first.n && (kv_arg_ll(&first, &sec) < 0 || sec < 0 || sec > 100000000))
			return reply_errorf(&c->out, "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters");
		s->cfg.save_seconds = (unsigned)sec;
		s->ps.next_save_ms = 0;
		return reply_ok(&c->out);
	}
	if (kv_arg_is(&argv[1], "SET") && argc >= 3)
		return reply_errorf(&c->out, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
		                    (int)(argv[2].n > 128 ? 128 : argv[2].n), argv[2].p);
	reply_errorf(&c->out, "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try CONFIG HELP.",
	             (int)(argv[1].n > 128 ? 128 : argv[1].n), argv[1].p);
}

void kv_cmd_save(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	char err[256];
	if (persist_save(s, err, sizeof(err)) < 0)
		return reply_errorf(&c->out, "%s", err);
	reply_ok(&c->out);
}

void kv_cmd_bgsave(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	char err[256];
	if (argc > 2 || (argc == 2 && !kv_arg_is(&argv[1], "SCHEDULE")))
		return reply_error(&c->out, "ERR syntax error");
	if (persist_bgsave(s, err, sizeof(err)) < 0)
		return reply_errorf(&c->out, "%s", err);
	reply_simple(&c->out, "Background saving started");
}

void kv_cmd_lastsave(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	reply_int(&c->out, s->ps.lastsave);
}

void kv_cmd_shutdown(struct server *s, struct client *c, struct kv_arg *argv, size_t argc)
{
	bool save = s->cfg.save_seconds > 0, nosave = false;
	for (size_t i = 1; i < argc; i++) {
		if (kv_arg_is(&argv[i], "NOSAVE"))
			nosave = true;
		else if (kv_arg_is(&argv[i], "SAVE"))
			save = true;
		else if (!kv_arg_is(&argv[i], "NOW") && !kv_arg_is(&argv[i], "FORCE"))
			return reply_error(&c->out, "ERR syntax error");
	}
	if (nosave && save && argc > 2)
		return reply_error(&c->out, "ERR syntax error");
	persist_cancel(s);
	if (save && !nosave) {
		char err[256];
		if (persist_save(s, err, sizeof(err)) < 0) {
			fprintf(stderr, "bgsnap-kv: SHUTDOWN: %s\n", err);
			return reply_error(&c->out, "ERR Errors trying to SHUTDOWN. Check logs.");
		}
	}
	s->shutdown = true;
}
