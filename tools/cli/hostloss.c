/* hostloss.c - the host's work lost to a snapshot (hostloss.h). */
#include <string.h>

#include "cli/hostloss.h"

double hostloss_progress_at(const struct hl_point *p, size_t n, double t)
{
	if (n == 0)
		return 0;
	if (t <= p[0].t)
		return p[0].n;
	size_t lo = 0, hi = n - 1;
	if (t >= p[hi].t)
		return p[hi].n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (p[mid].t <= t)
			lo = mid;
		else
			hi = mid;
	}
	if (p[hi].t <= p[lo].t)
		return p[hi].n;
	return p[lo].n + (p[hi].n - p[lo].n) * (t - p[lo].t) / (p[hi].t - p[lo].t);
}

double hostloss_rate(const struct hl_point *p, size_t n, double a, double b)
{
	if (n < 2 || b - a < 1e-3 || a < p[0].t || b > p[n - 1].t)
		return -1;
	return (hostloss_progress_at(p, n, b) - hostloss_progress_at(p, n, a)) / (b - a);
}

static bool back(double rate, double before)
{
	return rate >= before * (1 - HOSTLOSS_TOLERANCE) && rate <= before * (1 + HOSTLOSS_TOLERANCE);
}

int hostloss_compute(const struct hl_point *p, size_t n, double rate_before, double pause, double end,
                     struct hostloss *out)
{
	memset(out, 0, sizeof(*out));
	if (!(rate_before > 0) || n < 2 || pause < p[0].t || pause > p[n - 1].t)
		return -1;
	const double w = HOSTLOSS_WINDOW_S;
	double limit = end + HOSTLOSS_TAIL_S;
	if (limit > p[n - 1].t)
		limit = p[n - 1].t;
	bool prev_back = false;
	double prev_loss = 0;
	out->until = pause;
	for (unsigned i = 0;; i++) {
		double a = pause + i * w, b = a + w;
		if (b > limit + 1e-9)
			break;
		double rate = (hostloss_progress_at(p, n, b) - hostloss_progress_at(p, n, a)) / w;
		double loss = (1 - rate / rate_before) * w;
		bool now_back = a >= end - 1e-9 && back(rate, rate_before);
		if (now_back && prev_back) {
			/* The previous window was the first of the two: not lost. */
			out->lost_s -= prev_loss;
			out->windows--;
			out->until = a - w;
			out->recovered = true;
			return 0;
		}
		out->lost_s += loss;
		out->windows++;
		out->until = b;
		prev_back = now_back;
		prev_loss = loss;
	}
	return 0;
}
