/*
 * cmd_bench.c - `bgsnap bench` (bench.h): the workload and its oracle, the
 * optional probe of the raw primitives, then the method list once per round,
 * each method reported as it completes, and the summary over the rounds.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "cli/cli.h"
#include "commands.h"

/* What a round reports on stderr about one method; true if it failed. */
static bool say_failure(const struct bench_opts *o, const struct bench_result *res)
{
	const char *name = bgsnap_method_name(res->method);
	bool failed = res->status == BENCH_ERROR || (res->status == BENCH_OK && !res->verified);
	if (res->status == BENCH_OK && res->verified && o->restore && !res->rr.verified) {
		failed = true;
		cli_error("%s: %s", name, res->rr.msg);
	}
	if (res->status == BENCH_SKIPPED && !o->json)
		cli_error("%s skipped: %s", name, res->msg);
	else if (res->status == BENCH_ERROR || (res->status == BENCH_OK && !res->verified))
		cli_error("%s: %s", name, res->msg);
	return failed;
}

/* Every method of the list once, into rs[0..nmethods).  Returns EXIT_OK or
 * EXIT_FAIL (a method failed or did not verify). */
static int run_round(const struct bench_opts *o, wl *w, wl_oracle *oracle, struct bench_result *rs,
                     unsigned round, double raw_wp_us)
{
	int rc = EXIT_OK;
	for (int i = 0; i < o->nmethods; i++) {
		struct bench_result *res = &rs[i];
		if (!o->no_prefault)
			wl_settle(w);
		bench_run_method(o, w, oracle, o->methods[i], res);
		res->round = round;
		if (say_failure(o, res))
			rc = EXIT_FAIL;
		if (o->json)
			bench_report_json(o, res);
		fflush(stdout);
	}
	if (!o->json)
		bench_report_table(o, rs, o->nmethods, raw_wp_us);
	return rc;
}

/* --probe-wp, on the state every method starts from: the written pages
 * populated (the never-written ones would otherwise be cheap holes to
 * protect). */
static int probe(const struct bench_opts *o, wl *w, struct wp_probe_result *pr)
{
	char err[256] = "";
	if (!o->no_prefault)
		wl_settle(w);
	if (wp_probe(wl_mem(w), wl_mem_bytes(w), pr, err, sizeof(err)) < 0) {
		cli_error("--probe-wp: %s", err);
		return EXIT_FAIL;
	}
	bench_report_probe(o, pr);
	return EXIT_OK;
}

static int rounds(const struct bench_opts *o, wl *w, const struct wl_params *params, double raw_wp_us)
{
	wl_oracle *oracle;
	if (wl_oracle_create(&oracle, params) < 0) {
		cli_error("out of memory for the oracle");
		return EXIT_FAIL;
	}
	struct bench_result *all = calloc((size_t)o->repeat * (size_t)o->nmethods, sizeof(*all));
	if (!all) {
		cli_error("out of memory");
		wl_oracle_destroy(oracle);
		return EXIT_FAIL;
	}
	int rc = EXIT_OK;
	for (unsigned k = 0; k < o->repeat; k++)
		if (run_round(o, w, oracle, all + (size_t)k * (size_t)o->nmethods, k + 1, raw_wp_us) != EXIT_OK)
			rc = EXIT_FAIL;
	if (o->repeat > 1)
		bench_report_summary(o, all);
	free(all);
	wl_oracle_destroy(oracle);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o;
	/* A write to a pipe whose reader is gone is an error to report (the
	 * library fails the snapshot with EPIPE), not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	int r = bench_parse_args(argc, argv, &o);
	if (r > 0)
		return cli_help(bench_usage);
	if (r < 0) {
		fprintf(stderr, "(bgsnap bench --help for usage)\n");
		return EXIT_USAGE;
	}
	struct wl_config cfg = {
		.params = { .npages = o.mem / WL_PAGE, .threads = o.threads, .pattern = o.pattern, .seed = o.seed,
		            .fill = o.fill },
		.thp = o.thp,
		.memory = o.memory,
	};
	char err[256];
	wl *w;
	r = wl_create(&w, &cfg, err, sizeof(err));
	if (r < 0) {
		cli_error("%s", err);
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	struct wp_probe_result raw = { .wp_us = -1 };
	int rc = o.probe_wp ? probe(&o, w, &raw) : EXIT_OK;
	if (rc == EXIT_OK && o.incremental)
		rc = bench_incremental(&o, w, &cfg.params);
	else if (rc == EXIT_OK && o.reset_loop)
		rc = bench_reset_loop(&o, w, &cfg.params);
	else if (rc == EXIT_OK && (!o.probe_wp || o.method_given))
		rc = rounds(&o, w, &cfg.params, raw.wp_us);
	wl_destroy(w);
	return rc;
}
