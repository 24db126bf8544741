/*
 * t_hostloss.c - the host-loss measure every tool reports (tools/cli/
 * hostloss.c), fed synthetic progress series whose loss is known: a stop
 * loses exactly its pause, a host at a quarter of its speed for a second
 * loses three quarters of it, a host that never recovers is cut at the tail,
 * a slow recovery after the end counts, noise around the old rate cancels,
 * and inputs that define nothing are refused.
 *
 * The measure lives in the tools' floor, not in the library, so it is
 * compiled into this test directly.
 */
#include <math.h>
#include <stdlib.h>

#include "../tools/cli/hostloss.c"
#include "testutil.h"

#define STEP 0.01 /* seconds between points */

/* A series from 0 to t_max seconds whose rate at time t is rate(t). */
static struct hl_point *series(double t_max, double (*rate)(double), size_t *n)
{
	size_t k = (size_t)(t_max / STEP) + 1;
	struct hl_point *p = calloc(k, sizeof(*p));
	CHECK(p != NULL, "out of memory");
	double acc = 0;
	for (size_t i = 0; i < k; i++) {
		p[i].t = i * STEP;
		p[i].n = acc;
		acc += rate(p[i].t + STEP / 2) * STEP;
	}
	*n = k;
	return p;
}

static bool near(double a, double b, double tol)
{
	return fabs(a - b) <= tol;
}

/* Stopped from 1.0 to 1.3 s, then at full speed again. */
static double r_stop(double t)
{
	return t >= 1.0 && t < 1.3 ? 0 : 1000;
}

/* A quarter of the speed from 1.0 to 2.0 s. */
static double r_quarter(double t)
{
	return t >= 1.0 && t < 2.0 ? 250 : 1000;
}

/* Half the speed from 1.0 s on, for good. */
static double r_never(double t)
{
	return t >= 1.0 ? 500 : 1000;
}

/* Stopped 1.0-1.2 s, then 90 % until 2.2 s (after the snapshot's end). */
static double r_slow_after(double t)
{
	if (t >= 1.0 && t < 1.2)
		return 0;
	return t >= 1.2 && t < 2.2 ? 900 : 1000;
}

/* Stopped 1.0-1.2 s, then windows alternately 20 % above and below. */
static double r_noisy(double t)
{
	if (t >= 1.0 && t < 1.2)
		return 0;
	if (t < 1.2)
		return 1000;
	return ((int)((t - 1.0) / HOSTLOSS_WINDOW_S)) % 2 ? 1200 : 800;
}

static void expect(const char *what, double (*rate)(double), double t_max, double end, double lost, bool recovered)
{
	size_t n;
	struct hl_point *p = series(t_max, rate, &n);
	struct hostloss h;
	CHECK_RC(hostloss_compute(p, n, 1000, 1.0, end, &h), 0, "%s", what);
	CHECK(near(h.lost_s, lost, 0.002), "%s: lost %.4f s, expected %.4f s", what, h.lost_s, lost);
	CHECK(h.recovered == recovered, "%s: recovered %d, expected %d", what, h.recovered, recovered);
	free(p);
}

int main(void)
{
	expect("stop", r_stop, 4, 1.3, 0.3, true);
	expect("quarter speed", r_quarter, 4, 2.0, 0.75, true);
	/* Cut 5 s after the end (2.0 s): 6 s at half speed. */
	expect("never recovers", r_never, 10, 2.0, 3.0, false);
	/* Cut at the last point when the series ends first. */
	expect("series ends", r_never, 3, 2.0, 1.0, false);
	expect("slow after the end", r_slow_after, 5, 1.2, 0.2 + 0.1, true);
	/* Never two windows within 5 %: cut at the tail, the noise cancels. */
	expect("noise", r_noisy, 8, 1.2, 0.2, false);

	size_t n;
	struct hl_point *p = series(4, r_quarter, &n);
	struct hostloss h;
	CHECK_RC(hostloss_compute(p, n, 0, 1.0, 2.0, &h), -1, "no rate before: nothing is defined");
	CHECK_RC(hostloss_compute(p, n, 1000, 9.0, 10.0, &h), -1, "a pause outside the series");
	CHECK(near(hostloss_rate(p, n, 1.0, 2.0), 250, 1e-6), "rate over the slow second %.3f",
	      hostloss_rate(p, n, 1.0, 2.0));
	CHECK(hostloss_rate(p, n, 3.5, 4.5) < 0, "a rate past the last point is not a rate");
	CHECK(near(hostloss_progress_at(p, n, 0.005), 5, 1e-9), "interpolated progress %.4f",
	      hostloss_progress_at(p, n, 0.005));
	free(p);
	printf("ok\n");
	return 0;
}
