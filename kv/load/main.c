/*
 * main.c - bgsnap-kv-load, the load driver of bench/kv-vs-redis.sh; it
 * speaks RESP2 to any Redis-protocol server:
 *
 *   fill PORT KEYS VSIZE        SETs key 0..KEYS-1 to generation 0 (pipelined MSET)
 *   run PORT PID KEYS VSIZE SECONDS BGSAVE_AT [CLIENTS]
 *                               CLIENTS connections (default 4), one request
 *                               in flight each, half SET (generation 1) half
 *                               GET on random keys; BGSAVE at BGSAVE_AT s;
 *                               throughput and latency before, during and
 *                               after the save, peak RSS of PID: one JSON line
 *   check PORT KEYS VSIZE       reads every key (MGET): each must hold
 *                               generation 0 or 1 of its own value; JSON line
 *   first-get PORT LOG CMD...   starts CMD (output to LOG) and times the first
 *                               answered GET; JSON line with the pid
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "values.h"

int load_run(int argc, char **argv);

static int fill(int port, long long keys, size_t vsize)
{
	struct conn c;
	if (conn_open(&c, port) < 0)
		return fprintf(stderr, "fill: cannot connect to port %d\n", port), 1;
	enum { PER_CMD = 16, DEPTH = 32 };
	char (*names)[32] = malloc(sizeof(*names) * PER_CMD);
	char *vals = malloc(vsize * PER_CMD);
	if (!names || !vals)
		return 1;
	for (long long i = 0; i < keys;) {
		int sent = 0;
		for (; sent < DEPTH && i < keys; sent++) {
			const char *argv[1 + 2 * PER_CMD];
			size_t lens[1 + 2 * PER_CMD];
			int n = 1;
			argv[0] = "MSET";
			lens[0] = 4;
			for (int k = 0; k < PER_CMD && i < keys; k++, i++) {
				lens[n] = key_name(names[k], sizeof(names[k]), i);
				argv[n++] = names[k];
				value_of(vals + (size_t)k * vsize, vsize, i, 0);
				argv[n] = vals + (size_t)k * vsize;
				lens[n++] = vsize;
			}
			if (conn_cmd(&c, n, argv, lens) < 0)
				return 1;
		}
		if (conn_flush(&c) < 0)
			return fprintf(stderr, "fill: connection lost\n"), 1;
		for (int k = 0; k < sent; k++) {
			struct reply r;
			if (conn_read(&c, &r) < 0 || r.type != '+')
				return fprintf(stderr, "fill: MSET failed: %c%.*s\n", r.type, (int)(r.len > 0 ? r.len : 0),
				               r.s ? r.s : ""), 1;
		}
	}
	printf("{\"keys_loaded\": %lld}\n", keys);
	conn_close(&c);
	return 0;
}

static int check(int port, long long keys, size_t vsize)
{
	struct conn c;
	if (conn_open(&c, port) < 0)
		return fprintf(stderr, "check: cannot connect to port %d\n", port), 1;
	enum { BATCH = 128 };
	char names[BATCH][32];
	char *want = malloc(vsize);
	long long checked = 0, wrong = 0, missing = 0;
	for (long long i = 0; i < keys; i += BATCH) {
		const char *argv[BATCH + 1] = { "MGET" };
		size_t lens[BATCH + 1] = { 4 };
		int n = 0;
		for (; n < BATCH && i + n < keys; n++) {
			lens[n + 1] = key_name(names[n], sizeof(names[n]), i + n);
			argv[n + 1] = names[n];
		}
		struct reply r;
		if (conn_call(&c, &r, n + 1, argv, lens) < 0 || r.type != '*' || r.n != n)
			return fprintf(stderr, "check: MGET failed\n"), 1;
		for (int k = 0; k < n; k++) {
			if (conn_read(&c, &r) < 0 || r.type != '$')
				return fprintf(stderr, "check: MGET reply broken\n"), 1;
			checked++;
			if (r.len < 0) {
				missing++;
				wrong++;
				continue;
			}
			bool ok = false;
			for (int g = 0; g < 2 && !ok; g++) {
				value_of(want, vsize, i + k, g);
				ok = (size_t)r.len == vsize && !memcmp(r.s, want, vsize);
			}
			if (!ok && wrong - missing < 5)
				fprintf(stderr, "check: key %lld holds %lld bytes starting \"%.30s\"\n", i + k, r.len, r.s);
			wrong += !ok;
		}
	}
	printf("{\"keys_checked\": %lld, \"keys_wrong\": %lld, \"keys_missing\": %lld}\n", checked, wrong, missing);
	free(want);
	conn_close(&c);
	return wrong ? 1 : 0;
}

static int first_get(int port, const char *log, char **cmd)
{
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setsid();
		execvp(cmd[0], cmd);
		_exit(127);
	}
	uint64_t usable = 0;
	while (now_ns() - t0 < 600ull * 1000000000u) {
		struct conn c;
		if (conn_open(&c, port) == 0) {
			struct reply r;
			const char *argv[] = { "GET", "key:000000000000" };
			int rc = conn_call(&c, &r, 2, argv, NULL);
			conn_close(&c);
			if (rc == 0 && r.type == '$') {
				usable = now_ns();
				break;
			}
		}
		if (kill(pid, 0) < 0)
			break;
		usleep(1000);
	}
	if (!usable)
		return fprintf(stderr, "first-get: no answer from port %d\n", port), 1;
	printf("{\"restart_to_first_get_ms\": %.1f, \"pid\": %d}\n", (double)(usable - t0) / 1e6, (int)pid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "fill"))
		return fill(atoi(argv[2]), atoll(argv[3]), (size_t)atoll(argv[4]));
	if (argc >= 5 && !strcmp(argv[1], "check"))
		return check(atoi(argv[2]), atoll(argv[3]), (size_t)atoll(argv[4]));
	if (argc >= 5 && !strcmp(argv[1], "first-get"))
		return first_get(atoi(argv[2]), argv[3], argv + 4);
	if (argc >= 8 && !strcmp(argv[1], "run"))
		return load_run(argc - 1, argv + 1);
	fprintf(stderr, "usage: bgsnap-kv-load fill PORT KEYS VSIZE | check PORT KEYS VSIZE |\n"
	                "       run PORT PID KEYS VSIZE SECONDS BGSAVE_AT [CLIENTS] | first-get PORT LOG CMD...\n");
	return 2;
}
