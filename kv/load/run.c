/*
 * run.c - bgsnap-kv-load's `run`: a fixed-time SET/GET load with a BGSAVE
 * in the middle, and what the clients saw before, during and after it.
 *
 * Every request's start time and latency is kept (a few million at most),
 * then sorted per phase: the phases are cut at the instants the driver
 * itself observed (BGSAVE sent; INFO showing the save over), so the same
 * code measures any server.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "values.h"

int load_run(int argc, char **argv);

struct sample {
	uint64_t t;                  /* request start, ns from the run's start  */
	uint64_t lat;                /* ns                                      */
};

struct worker {
	int port, id;
	long long keys;
	size_t vsize;
	uint64_t start;
	atomic_int *stop;
	struct sample *s;
	size_t n, cap;
	int failed;
	pthread_t th;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct conn c;
	if (conn_open(&c, w->port) < 0) {
		w->failed = 1;
		return NULL;
	}
	char key[32];
	char *val = malloc(w->vsize);
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
	while (val && !atomic_load(w->stop)) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		long long k = (long long)(x % (uint64_t)w->keys);
		size_t kl = key_name(key, sizeof(key), k);
		bool set = (x >> 40) & 1;
		if (set)
			value_of(val, w->vsize, k, 1);
		const char *av[] = { set ? "SET" : "GET", key, val };
		size_t lens[] = { 3, kl, w->vsize };
		uint64_t t0 = now_ns();
		struct reply r;
		if (conn_call(&c, &r, set ? 3 : 2, av, lens) < 0 || r.type == '-') {
			fprintf(stderr, "run: request failed: %c%.*s\n", r.type, (int)(r.len > 0 ? r.len : 0), r.s ? r.s : "");
			w->failed = 1;
			break;
		}
		uint64_t t1 = now_ns();
		if (w->n == w->cap) {
			size_t nc = w->cap ? w->cap * 2 : 65536;
			struct sample *ns = realloc(w->s, nc * sizeof(*ns));
			if (!ns) {
				w->failed = 1;
				break;
			}
			w->s = ns;
			w->cap = nc;
		}
		w->s[w->n++] = (struct sample){ t0 - w->start, t1 - t0 };
	}
	free(val);
	conn_close(&c);
	return NULL;
}

static uint64_t rss_of(int pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/statm", pid);
	FILE *f = fopen(path, "r");
	unsigned long long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%llu %llu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * 4096;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Throughput and latency of the requests started in [from, to). */
static void phase(const char *name, struct worker *w, int nw, uint64_t from, uint64_t to, bool last)
{
	size_t n = 0;
	for (int i = 0; i < nw; i++)
		for (size_t k = 0; k < w[i].n; k++)
			n += w[i].s[k].t >= from && w[i].s[k].t < to;
	uint64_t *lat = malloc((n ? n : 1) * sizeof(*lat));
	size_t j = 0;
	for (int i = 0; i < nw && lat; i++)
		for (size_t k = 0; k < w[i].n; k++)
			if (w[i].s[k].t >= from && w[i].s[k].t < to)
				lat[j++] = w[i].s[k].lat;
	double p50 = 0, p99 = 0, mx = 0;
	if (lat && n) {
		qsort(lat, n, sizeof(*lat), cmp_u64);
		p50 = (double)lat[n / 2] / 1e6;
		p99 = (double)lat[(size_t)((double)n * 0.99)] / 1e6;
		mx = (double)lat[n - 1] / 1e6;
	}
	free(lat);
	double secs = (double)(to - from) / 1e9;
	printf("\"ops_per_s_%s\": %.0f, \"p50_ms_%s\": %.3f, \"p99_ms_%s\": %.3f, \"max_ms_%s\": %.3f%s", name,
	       secs > 0 ? (double)n / secs : 0, name, p50, name, p99, name, mx, last ? "" : ", ");
}

int load_run(int argc, char **argv)
{
	int port = atoi(argv[1]), pid = atoi(argv[2]);
	long long keys = atoll(argv[3]);
	size_t vsize = (size_t)atoll(argv[4]);
	double seconds = atof(argv[5]), bgsave_at = atof(argv[6]);
	int nw = argc > 7 ? atoi(argv[7]) : 4;
	if (nw < 1 || nw > 64 || keys < 1 || vsize < 24)
		return fprintf(stderr, "run: bad arguments\n"), 2;
	struct conn ctl;
	if (conn_open(&ctl, port) < 0)
		return fprintf(stderr, "run: cannot connect to port %d\n", port), 1;
	atomic_int stop = 0;
	struct worker *w = calloc((size_t)nw, sizeof(*w));
	uint64_t start = now_ns();
	for (int i = 0; i < nw; i++) {
		w[i] = (struct worker){ .port = port, .id = i, .keys = keys, .vsize = vsize, .start = start, .stop = &stop };
		pthread_create(&w[i].th, NULL, worker_main, &w[i]);
	}
	uint64_t rss_before = 0, rss_peak = 0, t_save = 0, t_done = 0;
	uint64_t end = (uint64_t)(seconds * 1e9), at = (uint64_t)(bgsave_at * 1e9);
	for (;;) {
		uint64_t t = now_ns() - start;
		uint64_t rss = rss_of(pid);
		rss_peak = rss > rss_peak ? rss : rss_peak;
		if (!t_save && t >= at) {
			rss_before = rss;
			struct reply r;
			const char *av[] = { "BGSAVE" };
			t_save = now_ns() - start;
			if (conn_call(&ctl, &r, 1, av, NULL) < 0 || r.type != '+')
				return fprintf(stderr, "run: BGSAVE refused: %.*s\n", (int)(r.len > 0 ? r.len : 0), r.s ? r.s : ""), 1;
		} else if (t_save && !t_done && conn_info(&ctl, "rdb_bgsave_in_progress") == 0) {
			t_done = now_ns() - start;
		}
		if (t >= end && t_done && t >= t_done + 1000000000ull)
			break;
		usleep(20000);
	}
	atomic_store(&stop, 1);
	int failed = 0;
	for (int i = 0; i < nw; i++) {
		pthread_join(w[i].th, NULL);
		failed |= w[i].failed;
	}
	uint64_t t_end = now_ns() - start;
	printf("{\"clients\": %d, \"save_ms\": %.1f, \"rss_before_save\": %llu, \"rss_peak\": %llu, ", nw,
	       (double)(t_done - t_save) / 1e6, (unsigned long long)rss_before, (unsigned long long)rss_peak);
	printf("\"pause_us\": %lld, \"bgsnap_pause_hook_us\": %lld, ", conn_info(&ctl, "latest_fork_usec"),
	       conn_info(&ctl, "bgsnap_last_pause_us"));
	printf("\"extra_mem_bytes\": %lld, \"bgsave_ok\": %s, ",
	       conn_info(&ctl, "rdb_last_cow_size"), conn_info(&ctl, "rdb_last_bgsave_time_sec") >= 0 ? "true" : "false");
	/* The first second is warm-up (connections, caches). */
	phase("before", w, nw, t_save > 1000000000ull ? 1000000000ull : 0, t_save, false);
	phase("save", w, nw, t_save, t_done, false);
	phase("after", w, nw, t_done, t_end, true);
	printf("}\n");
	for (int i = 0; i < nw; i++)
		free(w[i].s);
	free(w);
	conn_close(&ctl);
	return failed;
}
