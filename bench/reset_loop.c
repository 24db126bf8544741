/*
 * reset_loop.c - `bgsnap bench --reset-loop N --dirty-pages K` (see
 * incremental.c for the chain bench it shares the engine set-up with).
 *
 * A full snapshot of the idle workload region, then N rounds of: write
 * one byte in each of the same K pages spread over the region (a harness
 * dirties much the same pages every run), bgsnap_reset.  The
 * same N rounds again with a memcpy of the K pages from a copy of the
 * region instead of the reset: the floor a reset is compared with.  Both
 * are timed around the call alone.  The region must equal its copy at
 * the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli/cli.h"
#include "cli/clock.h"
#include "cli/json.h"
#include "commands.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, unsigned n, double q)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	unsigned i = (unsigned)(q * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void dirty(uint8_t *mem, uint64_t npages, uint64_t k, unsigned round)
{
	uint64_t stride = npages / k;
	for (uint64_t i = 0; i < k; i++)
		mem[(i * stride) * WL_PAGE + round % WL_PAGE] ^= 0x5a;
}

static void report(const struct bench_opts *o, uint64_t *reset_ns, uint64_t *copy_ns, unsigned n,
                   uint64_t first_ns, bool verified)
{
	double sum = 0;
	for (unsigned i = 0; i < n; i++)
		sum += (double)reset_ns[i];
	double rps = sum > 0 ? n / (sum / 1e9) : 0;
	double r50 = pct(reset_ns, n, 0.5) / 1e3, r99 = pct(reset_ns, n, 0.99) / 1e3;
	double c50 = pct(copy_ns, n, 0.5) / 1e3, c99 = pct(copy_ns, n, 0.99) / 1e3;
	if (!o->json) {
		printf("reset of %llu pages in %llu MiB: %.0f resets/s, reset_us p50 %.1f p99 %.1f (first %.1f), "
		       "memcpy_us p50 %.1f p99 %.1f, ratio p50 %.2f%s\n", (unsigned long long)o->dirty_pages,
		       (unsigned long long)(o->mem >> 20), rps, r50, r99, first_ns / 1e3, c50, c99,
		       c50 > 0 ? r50 / c50 : 0, verified ? ", verified" : ", NOT VERIFIED");
		return;
	}
	struct json j;
	json_begin(&j, stdout);
	json_open(&j, NULL);
	json_u64(&j, "mem_bytes", o->mem);
	json_u64(&j, "dirty_pages", o->dirty_pages);
	json_u64(&j, "rounds", n);
	json_double(&j, "resets_per_s", 1, rps);
	json_double(&j, "reset_us_p50", 1, r50);
	json_double(&j, "reset_us_p99", 1, r99);
	json_double(&j, "first_reset_us", 1, first_ns / 1e3);
	json_double(&j, "memcpy_us_p50", 1, c50);
	json_double(&j, "memcpy_us_p99", 1, c99);
	json_double(&j, "ratio_p50", 2, c50 > 0 ? r50 / c50 : 0);
	json_bool(&j, "verified", verified);
	json_close(&j);
	json_end_line(&j);
}

static int no_pause(void *ctx)
{
	(void)ctx;
	return 0;
}

int bench_reset_loop(const struct bench_opts *o, wl *w, const struct wl_params *params)
{
	uint64_t npages = params->npages, k = o->dirty_pages;
	if (k == 0 || k > npages) {
		cli_error("--dirty-pages: %llu is not in 1..%llu (the region's pages)", (unsigned long long)k,
		          (unsigned long long)npages);
		return EXIT_USAGE;
	}
	uint8_t *mem = wl_mem(w), *copy = malloc(wl_mem_bytes(w));
	uint64_t *reset_ns = calloc(o->reset_loop, sizeof(uint64_t)), *copy_ns = calloc(o->reset_loop, sizeof(uint64_t));
	struct bgsnap_options opts;
	bgsnap_options_init(&opts);
	opts.method = o->method_given ? o->methods[0] : BGSNAP_METHOD_AUTO;
	opts.chain = 1;
	bgsnap_engine *e = NULL;
	int rc = EXIT_FAIL;
	char path[4200];
	const char *t = getenv("TMPDIR");
	snprintf(path, sizeof(path), "%s", o->out ? o->out : "");
	if (!o->out)
		snprintf(path, sizeof(path), "%s/bgsnap-bench-reset.%ld.bgs", t && *t ? t : "/tmp", (long)getpid());
	if (!copy || !reset_ns || !copy_ns) {
		cli_error("out of memory");
		goto out;
	}
	int r = bgsnap_create(&e, &opts);
	struct bgsnap_hooks hooks = { .pause = no_pause };
	if (r == 0)
		r = bgsnap_add_region(e, "mem", mem, wl_mem_bytes(w));
	if (r == 0)
		r = bgsnap_set_hooks(e, &hooks);
	if (r == 0)
		r = bgsnap_start(e, path);
	if (r == 0)
		r = bgsnap_wait(e);
	if (r < 0) {
		cli_error("the snapshot to reset to: %s", e ? bgsnap_errmsg(e) : strerror(-r));
		goto out;
	}
	memcpy(copy, mem, wl_mem_bytes(w));
	uint64_t first = 0;
	for (unsigned i = 0; i < o->reset_loop; i++) {
		dirty(mem, npages, k, i);
		uint64_t t0 = mono_ns();
		int64_t n = bgsnap_reset(e, path);
		reset_ns[i] = mono_ns() - t0;
		if (n < 0 || (uint64_t)n != k) {
			cli_error("reset %u: %lld pages (%s), %llu written", i, (long long)n, n < 0 ? bgsnap_errmsg(e) : "",
			          (unsigned long long)k);
			goto out;
		}
		if (i == 0)
			first = reset_ns[0];
	}
	bool verified = memcmp(mem, copy, wl_mem_bytes(w)) == 0;
	uint64_t stride = npages / k;
	for (unsigned i = 0; i < o->reset_loop; i++) {
		dirty(mem, npages, k, i);
		uint64_t t0 = mono_ns();
		for (uint64_t j = 0; j < k; j++) {
			uint64_t off = j * stride * WL_PAGE;
			memcpy(mem + off, copy + off, WL_PAGE);
		}
		copy_ns[i] = mono_ns() - t0;
	}
	/* The first reset read its pages from the file: the loop's rate is
	 * over the later ones when there are any. */
	unsigned skip = o->reset_loop > 1 ? 1 : 0;
	report(o, reset_ns + skip, copy_ns + skip, o->reset_loop - skip, first, verified);
	rc = verified ? EXIT_OK : EXIT_FAIL;
	if (!verified)
		cli_error("the memory after the resets differs from the snapshot");
out:
	bgsnap_destroy(e);
	if (!o->out)
		unlink(path);
	free(copy);
	free(reset_ns);
	free(copy_ns);
	return rc;
}
