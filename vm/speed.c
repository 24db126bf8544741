/*
 * speed.c - the guest's speed: samples of its progress counter (often while
 * a snapshot runs: that is the window measured), and the --stats report,
 * which compares, per snapshot, the guest's speed during and after the
 * snapshot with its speed in the second before.  Scripts read the report's
 * "name=value" fields.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/hostloss.h"
#include "runner.h"

#define SPEED_WINDOW 1.0 /* seconds of guest speed measured before and after */

void speed_sample(struct runner *r, double t)
{
	if (r->nsamples == r->capsamples) {
		size_t nc = r->capsamples ? r->capsamples * 2 : 4096;
		struct sample *ns = realloc(r->samples, nc * sizeof(*ns));
		if (!ns)
			return; /* speed figures get coarser, nothing else */
		r->samples = ns;
		r->capsamples = nc;
	}
	r->samples[r->nsamples++] = (struct sample){ t, atomic_load_explicit(&r->vm.progress, memory_order_relaxed) };
}

/* Guest progress at time t, interpolated between samples. */
static double progress_at(const struct runner *r, double t)
{
	if (r->nsamples == 0)
		return 0;
	if (t <= r->samples[0].t)
		return (double)r->samples[0].progress;
	size_t lo = 0, hi = r->nsamples - 1;
	if (t >= r->samples[hi].t)
		return (double)r->samples[hi].progress;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (r->samples[mid].t <= t)
			lo = mid;
		else
			hi = mid;
	}
	const struct sample *a = &r->samples[lo], *b = &r->samples[hi];
	if (b->t <= a->t)
		return (double)b->progress;
	return (double)a->progress + ((double)b->progress - (double)a->progress) * (t - a->t) / (b->t - a->t);
}

/* Guest speed (units/s) over [a, b]; negative when the window is empty. */
static double speed(const struct runner *r, double a, double b)
{
	if (b - a < 1e-4)
		return -1;
	return (progress_at(r, b) - progress_at(r, a)) / (b - a);
}

static void report_snapshot(size_t i, const struct snap *s)
{
	const struct bgsnap_stats *st = &s->stats;
	const char *method = bgsnap_method_name(st->method);
	cli_error("snapshot %zu: path=%s method=%s result=%s console_offset=%" PRIu64 " pause_us=%" PRIu64
	          " vcpu_stopped_us=%.0f wp_us=%" PRIu64 " prewp_us=%" PRIu64 " reprotect_pages=%" PRIu64
	          " total_ms=%.1f pages=%" PRIu64 " zero=%" PRIu64 " faulted=%" PRIu64 " unprotect_calls=%" PRIu64
	          " unprotect_ms=%.1f bytes=%" PRIu64 " achieved_bytes_per_s=%" PRIu64 " extra_mem_peak=%" PRIu64
	          " finished_paused=%d finish_pause_us=%" PRIu64 " fault_wait_us=%" PRIu64,
	          i + 1, s->path, method ? method : "?", s->state == SNAP_DONE ? "ok" : "failed", s->console_offset,
	          st->pause_us, (s->t_resumed - s->t_parked) * 1e6, st->wp_us, st->prewp_us, st->reprotect_pages,
	          (double)st->total_us / 1e3, st->pages_total, st->pages_zero, st->pages_faulted,
	          st->unprotect_calls, (double)st->unprotect_us / 1e3, st->bytes_written,
	          st->achieved_bytes_per_s, st->extra_mem_peak, st->finished_paused, st->finish_pause_us,
	          st->fault_wait_us);
}

/* The guest's work lost to the snapshot (cli/hostloss.h) against its
 * speed in the second before; in `out`, "n/a" when not measurable. */
static void lost(const struct runner *r, const struct snap *s, double before, char *out, size_t len)
{
	snprintf(out, len, "n/a");
	struct hl_point *p = malloc(r->nsamples * sizeof(*p));
	if (!p)
		return;
	for (size_t i = 0; i < r->nsamples; i++)
		p[i] = (struct hl_point){ r->samples[i].t, (double)r->samples[i].progress };
	struct hostloss h;
	if (hostloss_compute(p, r->nsamples, before, s->t_parked, s->t_done, &h) == 0)
		snprintf(out, len, "%.1f lost_span_ms=%.0f recovered=%s", h.lost_s * 1e3, (h.until - s->t_parked) * 1e3,
		         h.recovered ? "yes" : "no");
	free(p);
}

/* The guest's speed in the second before the pause, during the snapshot
 * and in the second after it, and the work it lost. */
static void report_speed(const struct runner *r, size_t i, const struct snap *s)
{
	double bs = s->t_parked - SPEED_WINDOW, be = s->t_parked;
	if (bs < r->t0)
		bs = r->t0;
	double as = s->t_done, ae = s->t_done + SPEED_WINDOW;
	if (ae > r->t_end)
		ae = r->t_end;
	double before = speed(r, bs, be), during = speed(r, s->t_resumed, s->t_done), after = speed(r, as, ae);
	char pd[32] = "n/a", pa[32] = "n/a";
	if (before > 0 && during >= 0)
		snprintf(pd, sizeof(pd), "%.0f%%", 100.0 * during / before);
	if (before > 0 && after >= 0)
		snprintf(pa, sizeof(pa), "%.0f%%", 100.0 * after / before);
	char lm[96];
	lost(r, s, before, lm, sizeof(lm));
	cli_error("snapshot %zu: guest speed (units/s) before=%.4g during=%.4g after=%.4g during/before=%s "
	          "after/before=%s (windows %.0f ms, %.0f ms, %.0f ms) lost_ms=%s",
	          i + 1, before, during, after, pd, pa, (be - bs) * 1e3, (s->t_done - s->t_resumed) * 1e3,
	          (ae - as) * 1e3, lm);
}

void speed_report(const struct runner *r)
{
	double run_s = r->t_end - r->t0;
	cli_error("guest ran %.3f s, printed %" PRIu64 " console bytes, %" PRIu64 " progress units (%.3g/s)", run_s,
	          r->vm.console_bytes, (uint64_t)atomic_load(&r->vm.progress),
	          run_s > 0 ? speed(r, r->t0, r->t_end) : 0.0);
	for (size_t i = 0; i < r->nsnaps; i++) {
		const struct snap *s = &r->snaps[i];
		if (s->state != SNAP_DONE && s->state != SNAP_FAILED)
			continue;
		report_snapshot(i, s);
		if (s->state == SNAP_DONE)
			report_speed(r, i, s);
	}
}
