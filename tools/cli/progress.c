/* progress.c - the progress line of progress.h. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli/clock.h"
#include "cli/progress.h"

#define REDRAW_NS 100000000ull

bool progress_option(int c, enum progress_mode *mode)
{
	if (c == PROGRESS_OPT_FORCE)
		*mode = PROGRESS_FORCE;
	else if (c == PROGRESS_OPT_QUIET)
		*mode = PROGRESS_QUIET;
	else
		return false;
	return true;
}

void progress_begin(struct progress *p, enum progress_mode mode, const char *label, uint64_t total)
{
	*p = (struct progress){ .label = label, .total = total };
	p->shown = mode == PROGRESS_FORCE || (mode == PROGRESS_AUTO && isatty(STDERR_FILENO));
	p->t0_ns = mono_ns();
}

void progress_ratio(struct progress *p, double ratio)
{
	p->ratio = ratio;
}

/* "1h02m", "3m05s", "12s": short enough to keep the line under 80 columns. */
static void fmt_left(char *buf, size_t len, double s)
{
	unsigned long t = (unsigned long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, len, "%luh%02lum", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(buf, len, "%lum%02lus", t / 60, t % 60);
	else
		snprintf(buf, len, "%lus", t);
}

static void draw(struct progress *p, uint64_t done, uint64_t now)
{
	double el = (double)(now - p->t0_ns) / 1e9;
	double mbs = el > 0 ? (double)done / el / 1e6 : 0;
	char line[160], left[32] = "?";
	int n;
	if (p->total) {
		uint64_t d = done > p->total ? p->total : done;
		double frac = (double)d / (double)p->total;
		if (d > 0 && el > 0)
			fmt_left(left, sizeof left, el / frac - el);
		n = snprintf(line, sizeof line, "%s: %5.1f%%  %.1f MB/s  %s left", p->label, frac * 100, mbs, left);
	} else {
		n = snprintf(line, sizeof line, "%s: %.1f MB  %.1f MB/s", p->label, (double)done / 1e6, mbs);
	}
	if (p->ratio > 0 && n > 0 && (size_t)n < sizeof line)
		n += snprintf(line + n, sizeof line - (size_t)n, "  ratio %.2f", p->ratio);
	if (n < 0)
		return;
	if (n >= (int)sizeof line)
		n = (int)sizeof line - 1;
	/* Pad over what is left of a longer previous line. */
	fprintf(stderr, "\r%s%*s", line, p->len > n ? p->len - n : 0, "");
	fflush(stderr);
	p->len = n;
	p->last_ns = now;
}

void progress_update(struct progress *p, uint64_t done)
{
	if (!p->shown)
		return;
	uint64_t now = mono_ns();
	if (p->len && now - p->last_ns < REDRAW_NS)
		return;
	draw(p, done, now);
}

void progress_end(struct progress *p)
{
	if (!p->shown || !p->len)
		return;
	fprintf(stderr, "\r%*s\r", p->len, "");
	fflush(stderr);
	p->len = 0;
}

int progress_only_options(int argc, char **argv, enum progress_mode *mode, cli_usage_fn *usage, int operands,
                          const char *what)
{
	static const struct option opts[] = { PROGRESS_OPTS, CLI_OPT_HELP, CLI_OPT_END };
	*mode = PROGRESS_AUTO;
	int c;
	while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
		if (progress_option(c, mode))
			continue;
		return c == 'h' ? cli_help(usage) : cli_usage_error(usage, NULL);
	}
	if (argc - optind != operands)
		return cli_usage_error(usage, "%s", what);
	return -1;
}

static uint64_t rchar_now(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	unsigned long long v = 0;
	if (f) {
		char line[128];
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "rchar: %llu", &v) == 1)
				break;
		fclose(f);
	}
	return v;
}

static void *watch_run(void *arg)
{
	struct progress_watch *w = arg;
	while (!atomic_load(&w->stop)) {
		uint64_t got = rchar_now() - w->rchar0;
		if (w->bar.total && got >= w->bar.total)
			got = w->bar.total - 1;
		progress_update(&w->bar, got);
		nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
	}
	return NULL;
}

void progress_watch_begin(struct progress_watch *w, enum progress_mode mode, const char *label, uint64_t total)
{
	w->rchar0 = rchar_now();
	atomic_init(&w->stop, false);
	progress_begin(&w->bar, mode, label, total);
	w->running = w->bar.shown && pthread_create(&w->thread, NULL, watch_run, w) == 0;
}

void progress_watch_end(struct progress_watch *w)
{
	if (w->running) {
		atomic_store(&w->stop, true);
		pthread_join(w->thread, NULL);
		w->running = false;
	}
	progress_end(&w->bar);
}
