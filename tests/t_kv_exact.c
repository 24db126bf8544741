/*
 * t_kv_exact.c - bgsnap-kv's BGSAVE holds every key's value at the BGSAVE
 * instant, under load, for every method, after an eager and a lazy restore.
 *
 * timeout: 240
 *
 * Several client threads each own a set of keys and run a deterministic
 * sequence of operations on them (SET with values whose length varies, so
 * entries move between size classes, and DEL), one request in flight,
 * publishing the last sequence number sent and the last acknowledged.  The
 * server applies each client's operations in order, so the snapshot holds,
 * for each client, exactly its first S operations for some S; since BGSAVE
 * is answered by the same loop, S lies between what the client had
 * acknowledged before BGSAVE was sent and what it had sent when the reply
 * came back.  The checker restarts the server from the snapshot, reads every
 * key, and requires a prefix S in that window that explains every key of
 * the client exactly (value bytes included).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "kvclient.h"
#include "snaptest.h"
#include "testutil.h"

/* The server a failed CHECK leaves behind is killed on the way out. */
static pid_t live_server;

static void kill_live_server(void)
{
	if (live_server > 0)
		kill(live_server, SIGKILL);
}

#define NCLI 4
#define NKEYS 1000
#define MAXOPS 2000000

struct writer {
	int id, port;
	pthread_t th;
	atomic_llong sent, acked;
	atomic_int stop;
	int failed;
};

/* Operation `seq` (from 1) of client `c`: the key it touches, and whether
 * it deletes it.  The first NKEYS operations create every key. */
static int op_key(int c, long long seq, bool *del)
{
	if (seq <= NKEYS) {
		*del = false;
		return (int)(seq - 1);
	}
	uint64_t h = tu_mix64(((uint64_t)c << 40) ^ (uint64_t)seq);
	*del = h % 8 == 0;
	return (int)((h >> 8) % NKEYS);
}

static size_t render_value(char *buf, size_t cap, int c, int key, long long seq)
{
	int n = snprintf(buf, cap, "c%d:k%d:s%lld:", c, key, seq);
	size_t pad = (size_t)(tu_mix64((uint64_t)seq * 7 + (uint64_t)c) % 3000);
	if ((size_t)n + pad >= cap)
		pad = cap - (size_t)n - 1;
	memset(buf + n, 'a' + (int)(seq % 26), pad);
	return (size_t)n + pad;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct kvc c;
	if (kvc_connect(&c, w->port) < 0) {
		w->failed = 1;
		return NULL;
	}
	char key[32], val[4096];
	for (long long seq = 1; seq < MAXOPS && !atomic_load(&w->stop); seq++) {
		bool del;
		int k = op_key(w->id, seq, &del);
		snprintf(key, sizeof(key), "c%d:%d", w->id, k);
		size_t vl = render_value(val, sizeof(val), w->id, k, seq);
		const char *argv[] = { del ? "DEL" : "SET", key, val };
		size_t lens[] = { del ? 3 : 3, strlen(key), vl };
		atomic_store(&w->sent, seq);
		struct kvr r;
		if (kvc_send(&c, del ? 2 : 3, argv, lens) < 0 || kvc_read(&c, &r) < 0 ||
		    (r.type != ':' && r.type != '+')) {
			fprintf(stderr, "writer %d: op %lld failed (reply type %c %s)\n", w->id, seq, r.type,
			        r.s ? r.s : "");
			w->failed = 1;
			break;
		}
		free(r.s);
		atomic_store(&w->acked, seq);
	}
	kvc_close(&c);
	return NULL;
}

/* Restored state of client c: seq of each key's value (0 absent, -1 a value
 * no operation of c wrote). */
static void read_client_keys(struct kvc *k, int c, long long *got)
{
	char key[32], want[4096];
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "c%d:%d", c, i);
		const char *argv[] = { "GET", key };
		struct kvr r;
		CHECK(kvc_call(k, &r, 2, argv) == 0, "GET %s: connection failed", key);
		CHECK(r.type == '$', "GET %s: reply type %c", key, r.type);
		got[i] = 0;
		if (r.len >= 0) {
			long long seq = -1;
			int kk = -1;
			if (sscanf(r.s, "c%*d:k%d:s%lld:", &kk, &seq) != 2 || kk != i)
				seq = -1;
			if (seq > 0) {
				size_t wl = render_value(want, sizeof(want), c, i, seq);
				if (wl != (size_t)r.len || memcmp(want, r.s, wl))
					seq = -1;
			}
			got[i] = seq;
		}
		free(r.s);
	}
}

/* Is there an S in [lo, hi] whose prefix explains got[] exactly?  Returns
 * S, or -1 with the number of mismatching keys at the closest S. */
static long long find_prefix(int c, const long long *got, long long lo, long long hi, long long *best_bad)
{
	long long *state = calloc(NKEYS, sizeof(*state));
	CHECK(state, "out of memory");
	for (long long s = 1; s <= lo; s++) {
		bool del;
		int k = op_key(c, s, &del);
		state[k] = del ? 0 : s;
	}
	long long bad = 0;
	for (int i = 0; i < NKEYS; i++)
		bad += state[i] != got[i];
	*best_bad = bad;
	long long found = -1;
	for (long long s = lo;; s++) {
		if (bad < *best_bad)
			*best_bad = bad;
		if (bad == 0) {
			found = s;
			break;
		}
		if (s == hi)
			break;
		bool del;
		int k = op_key(c, s + 1, &del);
		long long nv = del ? 0 : s + 1;
		bad -= state[k] != got[k];
		state[k] = nv;
		bad += state[k] != got[k];
	}
	free(state);
	return found;
}

static void check_restore(const char *dir, const char *file, const char *mode, const long long *lo,
                          const long long *hi)
{
	int port = kv_free_port(), st;
	char log[4200];
	snprintf(log, sizeof(log), "%s/restore-%s.log", dir, mode);
	const char *args[] = { "--maxmemory", "64mb", "--dir", dir, "--restore", file,
		               !strcmp(mode, "lazy") ? "--lazy" : NULL, NULL };
	pid_t pid = kv_spawn(NULL, port, log, &st, args);
	CHECK(pid > 0, "%s restore: the server did not start (status %d; see %s)", mode, st, log);
	live_server = pid;
	struct kvc k;
	CHECK(kvc_connect(&k, port) == 0, "connect");
	long long present = 0;
	for (int c = 0; c < NCLI; c++) {
		long long got[NKEYS], bad;
		read_client_keys(&k, c, got);
		long long s = find_prefix(c, got, lo[c], hi[c], &bad);
		CHECK(s >= 0, "%s restore: client %d: no prefix in [%lld, %lld] explains the snapshot (%lld keys wrong at best)",
		      mode, c, lo[c], hi[c], bad);
		for (int i = 0; i < NKEYS; i++)
			present += got[i] > 0;
		printf("  %s restore: client %d: snapshot = its first %lld operations (window %lld..%lld), %d keys checked\n",
		       mode, c, s, lo[c], hi[c], NKEYS);
	}
	struct kvr r;
	const char *dbsize[] = { "DBSIZE" };
	CHECK(kvc_call(&k, &r, 1, dbsize) == 0 && r.type == ':', "DBSIZE");
	CHECK(r.n == present, "%s restore: DBSIZE %lld, but %lld keys found", mode, r.n, present);
	kvc_close(&k);
	kv_stop(pid, port);
}

static int one_method(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	int port = kv_free_port(), st;
	char log[4200], file[4200];
	snprintf(log, sizeof(log), "%s/server.log", dir);
	snprintf(file, sizeof(file), "%s/dump.bgsnap", dir);
	const char *args[] = { "--maxmemory", "64mb", "--dir", dir, "--method", bgsnap_method_name(method), NULL };
	pid_t pid = kv_spawn(NULL, port, log, &st, args);
	CHECK(pid > 0, "the server did not start (status %d; see %s)", st, log);
	live_server = pid;
	static struct writer w[NCLI];
	for (int i = 0; i < NCLI; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		w[i].port = port;
		CHECK(pthread_create(&w[i].th, NULL, writer_main, &w[i]) == 0, "pthread_create");
	}
	/* Every key exists and is being rewritten before the snapshot. */
	for (int i = 0; i < NCLI; i++)
		while (atomic_load(&w[i].acked) < 3 * NKEYS && !w[i].failed)
			tu_sleep_ms(5);
	struct kvc k;
	CHECK(kvc_connect(&k, port) == 0, "connect");
	long long lo[NCLI], hi[NCLI];
	for (int i = 0; i < NCLI; i++)
		lo[i] = atomic_load(&w[i].acked);
	struct kvr r;
	const char *bgsave[] = { "BGSAVE" };
	CHECK(kvc_call(&k, &r, 1, bgsave) == 0, "BGSAVE: no reply");
	for (int i = 0; i < NCLI; i++)
		hi[i] = atomic_load(&w[i].sent);
	CHECK(r.type == '+' && !strcmp(r.s, "Background saving started"), "BGSAVE replied %c%s", r.type, r.s ? r.s : "");
	free(r.s);
	while (kv_info_field(&k, "rdb_bgsave_in_progress") == 1)
		tu_sleep_ms(10);
	long long during = 0;
	for (int i = 0; i < NCLI; i++)
		during += atomic_load(&w[i].acked) - hi[i];
	CHECK(kv_info_field(&k, "rdb_bgsave_in_progress") == 0, "INFO failed");
	long long faulted = kv_info_field(&k, "bgsnap_last_pages_faulted");
	/* The status line is text; read it through INFO's raw reply. */
	const char *info[] = { "INFO", "persistence" };
	CHECK(kvc_call(&k, &r, 2, info) == 0 && r.type == '$', "INFO persistence");
	CHECK(strstr(r.s, "rdb_last_bgsave_status:ok"), "BGSAVE failed:\n%s\n(server log %s)", r.s, log);
	free(r.s);
	tu_sleep_ms(100);
	for (int i = 0; i < NCLI; i++)
		atomic_store(&w[i].stop, 1);
	for (int i = 0; i < NCLI; i++) {
		pthread_join(w[i].th, NULL);
		CHECK(!w[i].failed, "writer %d failed", i);
		CHECK(atomic_load(&w[i].acked) > hi[i], "writer %d made no progress after the BGSAVE", i);
	}
	printf("  %s: BGSAVE under load: %lld pages copied on write, %lld writes answered while it ran\n",
	       bgsnap_method_name(method), faulted, during);
	kvc_close(&k);
	kv_stop(pid, port);
	check_restore(dir, file, "eager", lo, hi);
	check_restore(dir, file, "lazy", lo, hi);
	return 0;
}

int main(void)
{
	atexit(kill_live_server);
	if (access(kv_server_path(), X_OK) != 0)
		SKIP("%s is not built", kv_server_path());
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "kv_exact", one_method, ~0u, 120);
	tu_tally_exit(&t, "t_kv_exact");
}
