/*
 * runner.c - bgsnap-vm's main loop: starts the vCPU, then until the guest
 * halts (or a quit), samples the guest's speed, starts the snapshots that
 * are due, finishes those that completed, ends a lazy restore once every
 * page is in, and serves the control socket, all from one poll().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/clock.h"
#include "runner.h"

void runner_init(struct runner *r)
{
	memset(r, 0, sizeof(*r));
	r->listen_fd = -1;
	r->control_mode = CONTROL_MODE_DEFAULT;
	r->snap_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; i < MAX_CLIENTS; i++)
		r->clients[i].fd = -1;
	r->method = BGSNAP_METHOD_AUTO;
}

void runner_free(struct runner *r)
{
	/* Before guest RAM goes away: the restore writes into it. */
	if (r->lazy)
		bgsnap_lazy_free(r->lazy);
	if (r->lazy_reader)
		bgsnap_reader_close(r->lazy_reader);
	control_close(r);
	/* Before guest RAM goes away: its tracking is registered on it. */
	if (r->chain_eng)
		bgsnap_destroy(r->chain_eng);
	if (r->snap_fd >= 0)
		close(r->snap_fd);
	for (size_t i = 0; i < r->nsnaps; i++)
		free(r->snaps[i].path);
	free(r->snaps);
	free(r->samples);
	vm_destroy(&r->vm);
}

/* Ends a lazy restore once every page is in (block: wait for it). */
static void lazy_poll(struct runner *r, bool block)
{
	if (!r->lazy)
		return;
	struct bgsnap_lazy_stats ls;
	if (!block) {
		if (bgsnap_lazy_get_stats(r->lazy, &ls, sizeof ls) < 0)
			return;
		if (!ls.done) {
			progress_update(&r->bar, (ls.pages_demand + ls.pages_prefetched + ls.pages_failed) * 4096u);
			return;
		}
	}
	int e = bgsnap_lazy_wait(r->lazy);
	progress_end(&r->bar);
	bgsnap_lazy_get_stats(r->lazy, &ls, sizeof ls);
	if (e < 0) {
		cli_error("lazy restore failed: %s", bgsnap_lazy_errmsg(r->lazy));
		r->failures++;
	} else if (r->stats) {
		cli_error("lazy restore: usable after %.1f ms, complete after %.1f ms; %llu of %llu pages on demand "
		          "(%llu faults), %llu prefetched",
		          (double)ls.usable_us / 1e3, (double)ls.total_us / 1e3, (unsigned long long)ls.pages_demand,
		          (unsigned long long)ls.pages_total, (unsigned long long)ls.faults,
		          (unsigned long long)ls.pages_prefetched);
	}
	bgsnap_lazy_free(r->lazy);
	r->lazy = NULL;
	bgsnap_reader_close(r->lazy_reader);
	r->lazy_reader = NULL;
}

/* Waits for the next event: the guest ending, a snapshot completing, the
 * control socket, or `next_due` (a scheduled snapshot; -1: none). */
static void wait_events(struct runner *r, bool finished, double next_due)
{
	struct pollfd pf[3 + MAX_CLIENTS];
	pf[0] = (struct pollfd){ .fd = r->vm.done_fd, .events = finished ? 0 : POLLIN };
	pf[1] = (struct pollfd){ .fd = r->snap_fd, .events = POLLIN };
	size_t nc = control_poll_fds(r, pf + 2);
	/* Sample often while a snapshot runs: that is the window measured. */
	int timeout = r->cur ? 2 : 10;
	if (next_due > 0) {
		int ms = (int)((next_due - mono_s()) * 1e3);
		if (ms < timeout)
			timeout = ms < 0 ? 0 : ms;
	}
	if (poll(pf, (nfds_t)(2 + nc), timeout) > 0)
		control_serve(r, pf + 2, nc);
}

/* One turn of the loop; false when the run is over. */
static bool turn(struct runner *r, bool *finished)
{
	double t = mono_s();
	speed_sample(r, t);
	snapshot_poll(r, false);
	snapshot_progress(r);
	lazy_poll(r, false);
	if (!*finished && vm_finished(&r->vm)) {
		*finished = true;
		r->t_end = t;
	}
	double next_due = -1;
	/* Snapshots wait for a lazy restore to complete: its missing-page
	 * registration and a snapshot's write protection do not mix. */
	if (!r->cur && !r->lazy)
		next_due = snapshot_schedule(r, t, *finished);
	if (*finished && !r->cur) {
		lazy_poll(r, true);
		if (!snapshot_pending(r))
			return false;
	}
	wait_events(r, *finished, next_due);
	return true;
}

/* After a quit: the running snapshot cancelled, the vCPU told to end. */
static void quit(struct runner *r, bool finished)
{
	if (r->cur) {
		bgsnap_cancel(r->eng);
		snapshot_poll(r, true);
	}
	if (r->user_stopped) {
		r->user_stopped = false;
		vm_resume(&r->vm);
	}
	vm_quit(&r->vm);
	if (!finished)
		r->t_end = mono_s();
}

int runner_run(struct runner *r)
{
	char err[256];
	if (r->snap_fd < 0) {
		cli_error("eventfd: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (r->control_path && control_open(r) < 0)
		return EXIT_FAIL;
	r->t0 = mono_s();
	speed_sample(r, r->t0);
	if (vm_start(&r->vm, err, sizeof(err)) < 0) {
		cli_error("%s", err);
		return EXIT_FAIL;
	}
	bool finished = false;
	while (!r->quit && turn(r, &finished))
		;
	if (r->quit)
		quit(r, finished);
	vm_join(&r->vm);
	lazy_poll(r, true);
	speed_sample(r, mono_s());
	fflush(stdout);
	if (r->vm.error) {
		cli_error("%s", r->vm.errmsg);
		r->failures++;
	}
	if (r->stats)
		speed_report(r);
	return r->failures ? EXIT_FAIL : EXIT_OK;
}
