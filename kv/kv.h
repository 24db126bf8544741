/*
 * kv.h - bgsnap-kv: a single-threaded RESP2 server whose whole database is
 * one arena (arena.h), saved by bgsnap background snapshots.  The server
 * (server.c) owns the event loop and the clients; commands.c, keyspace.c and
 * admin.c answer requests; persist.c takes snapshots, restore.c opens the
 * arena, fresh or from one.
 */
#ifndef KV_KV_H
#define KV_KV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "bgsnap.h"
#include "dict.h"
#include "reply.h"
#include "resp.h"

struct kv_config {
	int port;
	char bind[64];
	char dir[1024];
	char dbfilename[256];
	size_t maxmemory;            /* the arena's size                       */
	int method;                  /* enum bgsnap_method for BGSAVE          */
	const char *restore;         /* --restore FILE, or NULL                */
	bool lazy;
	unsigned save_seconds;       /* --save: BGSAVE every N s (0: never)    */
	size_t copy_buffer;          /* bgsnap copy buffer (0: library default) */
	unsigned pre_protect;        /* bgsnap_options.pre_protect             */
	bool thp;                    /* MADV_HUGEPAGE on the arena             */
	unsigned fault_around;       /* BGSNAP_PARAM_FAULT_AROUND_PAGES (0: default) */
	int save_nice;               /* nice value of a BGSAVE's writer threads */
	struct resp_limits limits;
	size_t query_max;            /* client input buffer hard limit         */
	size_t output_max;           /* client output buffer hard limit        */
	size_t output_soft;          /* stop reading a client above this       */
};

struct client {
	int fd;
	uint64_t id;
	char *in;
	size_t in_len, in_cap;
	struct resp_parser parser;
	struct outbuf out;
	bool closing;                /* close once the output is sent          */
	bool epollout;
	struct client *prev, *next;
};

/* Snapshot bookkeeping (persist.c). */
struct persist {
	bgsnap_engine *eng;          /* the BGSAVE running, or NULL            */
	pthread_t waiter;
	int evfd;                    /* the waiter signals the loop here       */
	int wait_rc;
	uint64_t started_ms;         /* CLOCK_REALTIME of the running BGSAVE   */
	int64_t lastsave;            /* unix seconds of the last success       */
	bool last_ok;
	int last_method;
	struct bgsnap_stats last;    /* of the last finished snapshot          */
	uint64_t last_save_ms;
	uint64_t start_call_us;      /* the loop's stop in the last BGSAVE start */
	uint64_t dirty;              /* writes since the last save started     */
	uint64_t dirty_at_start;
	uint64_t next_save_ms;       /* monotonic ms of the next --save        */
	bgsnap_lazy *lazy;           /* a lazy restore still running          */
	bgsnap_reader *lazy_reader;
	uint64_t restore_usable_us;  /* start of restore until serving         */
	uint64_t restore_total_us;
	bool restored;
};

struct server {
	struct kv_config cfg;
	struct arena_hdr *db;
	int epfd, lfd, tfd;
	struct client *clients;
	uint64_t nclients;
	uint64_t next_id;
	uint64_t start_unix;
	uint64_t total_conns, total_cmds, rejected_conns;
	uint64_t hits, misses, oom_errors, proto_errors;
	bool shutdown;
	int exit_code;
	struct persist ps;
};

/* The snapshot's state blob: its name and first line (restore.c refuses a
 * file without them). */
#define KV_STATE_NAME "kv"
#define KV_STATE_MAGIC "bgsnap-kv 1\n"

/* An argument of a command, pointing into the client's input buffer. */
struct kv_arg {
	const char *p;
	size_t n;
};

/* commands.c: executes argv[0..argc) for c, the reply into c->out. */
void kv_dispatch(struct server *s, struct client *c, struct kv_arg *argv, size_t argc);
bool kv_arg_is(const struct kv_arg *a, const char *word);
/* A whole decimal number in a (Redis's string2ll): 0 or -1. */
int kv_arg_ll(const struct kv_arg *a, long long *out);

/* The commands that live outside commands.c, all of one shape. */
typedef void kv_cmd_fn(struct server *s, struct client *c, struct kv_arg *argv, size_t argc);
kv_cmd_fn kv_cmd_keys, kv_cmd_scan, kv_cmd_ttl, kv_cmd_pttl, kv_cmd_expire, kv_cmd_pexpire, kv_cmd_persist;
kv_cmd_fn kv_cmd_info, kv_cmd_config, kv_cmd_save, kv_cmd_bgsave, kv_cmd_lastsave, kv_cmd_shutdown;

/* keyspace.c: Redis's glob on byte strings (KEYS, SCAN, CONFIG GET). */
bool kv_glob_match(const char *p, size_t pn, const char *s, size_t sn, int depth);


/* persist.c */
int persist_init(struct server *s);
/* Starts a background snapshot: 0, or -errno with Redis's message in err. */
int persist_bgsave(struct server *s, char *err, size_t err_len);
/* A snapshot written while the server waits (SAVE, SHUTDOWN). */
int persist_save(struct server *s, char *err, size_t err_len);
/* The loop's poll: a finished BGSAVE, a finished lazy restore, --save. */
void persist_poll(struct server *s);
/* Cancels a running BGSAVE and waits for it (shutdown). */
void persist_cancel(struct server *s);
/* restore.c: maps the arena, fresh or from cfg.restore; 0 or -1 after
 * saying why on stderr. */
int persist_open_arena(struct server *s, bool maxmemory_given);
void persist_close(struct server *s);
/* Waits for a lazy restore to end and frees it (exits if it failed). */
int persist_lazy_finish(struct server *s);
void persist_path(const struct server *s, char *buf, size_t len);

/* nice.c: sets the nice value of the running save's background threads;
 * returns how many were found. */
int kv_renice_save_threads(int nice_value);

/* server.c */
int server_run(struct server *s);

#endif
