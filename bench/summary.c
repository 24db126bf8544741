/* summary.c - `bgsnap bench --repeat N`: the median over the rounds of each
 * ratio taken within a round, these machines being too noisy to compare
 * figures across rounds. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "cli/json.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of the rounds' values of `ratio_of` for one method, over the
 * rounds where both sides ran; -1 when none did. */
static double median_over(const struct bench_result *rs, unsigned rounds, int n, int method,
                          double (*ratio_of)(const struct bench_result *m, const struct bench_result *round, int n))
{
	double v[REPEAT_MAX];
	unsigned k = 0;
	for (unsigned r = 0; r < rounds; r++) {
		const struct bench_result *m = bench_find_ok(rs + (size_t)r * (size_t)n, n, method);
		double x = m ? ratio_of(m, rs + (size_t)r * (size_t)n, n) : -1;
		if (x >= 0)
			v[k++] = x;
	}
	if (!k)
		return -1;
	qsort(v, k, sizeof(v[0]), cmp_double);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static double r_total_stop(const struct bench_result *m, const struct bench_result *rd, int n)
{
	const struct bench_result *s = bench_find_ok(rd, n, BGSNAP_METHOD_STOP);
	return s && s->st.total_us ? (double)m->st.total_us / (double)s->st.total_us : -1;
}

static double r_pause_fork(const struct bench_result *m, const struct bench_result *rd, int n)
{
	const struct bench_result *f = bench_find_ok(rd, n, BGSNAP_METHOD_FORK);
	return f && f->st.pause_us ? (double)m->st.pause_us / (double)f->st.pause_us : -1;
}

static double r_trap_fork(const struct bench_result *m, const struct bench_result *rd, int n)
{
	const struct bench_result *f = bench_find_ok(rd, n, BGSNAP_METHOD_FORK);
	return f && f->lat.trap_p50_us > 0 ? m->lat.trap_p50_us / f->lat.trap_p50_us : -1;
}

static double r_lost_stop(const struct bench_result *m, const struct bench_result *rd, int n)
{
	const struct bench_result *s = bench_find_ok(rd, n, BGSNAP_METHOD_STOP);
	return s && s->host_measured && m->host_measured && s->host_lost_ms > 0 ? m->host_lost_ms / s->host_lost_ms : -1;
}

static double r_lost_ms(const struct bench_result *m, const struct bench_result *rd, int n)
{
	(void)rd;
	(void)n;
	return m->host_measured ? m->host_lost_ms : -1;
}

static double r_after_before(const struct bench_result *m, const struct bench_result *rd, int n)
{
	(void)rd;
	(void)n;
	return m->wps_before > 0 ? m->wps_after / m->wps_before : -1;
}

static double r_total_ms(const struct bench_result *m, const struct bench_result *rd, int n)
{
	(void)rd;
	(void)n;
	return m->st.total_us / 1000.0;
}

static double r_pause_wp(const struct bench_result *m, const struct bench_result *rd, int n)
{
	(void)rd;
	(void)n;
	return m->st.wp_us ? (double)m->st.pause_us / (double)m->st.wp_us : -1;
}

/* After --repeat N: the median over the rounds of each ratio, taken within
 * each round (ratios side by side, not across noisy runs). */
/* The ratios, each the median over the rounds. */
static const struct column {
	const char *name;
	double (*fn)(const struct bench_result *, const struct bench_result *, int);
	int width;                   /* in the table */
} cols[] = {
	{ "total_ms", r_total_ms, 10 },         { "total_over_stop", r_total_stop, 16 },
	{ "pause_over_wp", r_pause_wp, 14 },    { "pause_over_fork", r_pause_fork, 16 },
	{ "trap_p50_over_fork", r_trap_fork, 19 }, { "host_lost_ms", r_lost_ms, 13 },
	{ "host_lost_over_stop", r_lost_stop, 20 },  { "after_over_before", r_after_before, 18 },
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))

static void summary_json(const struct bench_opts *o, const struct bench_result *rs, int m)
{
	char key[64];
	struct json j;
	json_begin(&j, stdout);
	json_open(&j, NULL);
	json_bool(&j, "summary", true);
	json_string(&j, "method", bgsnap_method_name(m));
	json_u64(&j, "rounds", o->repeat);
	for (size_t c = 0; c < NCOLS; c++) {
		double v = median_over(rs, o->repeat, o->nmethods, m, cols[c].fn);
		snprintf(key, sizeof(key), "%s_median", cols[c].name);
		if (v >= 0)
			json_raw(&j, key, "%.4g", v);
	}
	json_close(&j);
	json_end_line(&j);
}

static void summary_row(const struct bench_opts *o, const struct bench_result *rs, int m)
{
	printf("  %-12s", bgsnap_method_name(m));
	for (size_t c = 0; c < NCOLS; c++) {
		double v = median_over(rs, o->repeat, o->nmethods, m, cols[c].fn);
		if (v >= 0)
			printf(" %*.4g", cols[c].width, v);
		else
			printf(" %*s", cols[c].width, "-");
	}
	printf("\n");
}

void bench_report_summary(const struct bench_opts *o, const struct bench_result *rs)
{
	if (!o->json)
		printf("\nmedian over %u rounds of each ratio taken within a round (- : not measured)\n"
		       "  %-12s %10s %16s %14s %16s %19s %13s %20s %18s\n", o->repeat, "method", "total_ms",
		       "total_over_stop", "pause_over_wp", "pause_over_fork", "trap_p50_over_fork", "host_lost_ms",
		       "host_lost_over_stop", "after_over_before");
	for (int i = 0; i < o->nmethods; i++) {
		if (o->json)
			summary_json(o, rs, o->methods[i]);
		else
			summary_row(o, rs, o->methods[i]);
	}
}
