/*
 * fault_signal.c - the in-thread fault path (see fault_signal.h).
 *
 * The handler is async-signal-safe: it reads the active track through an
 * atomic pointer, and track_fault() takes no lock and allocates nothing.
 * An in-flight counter lets fault_signal_remove() wait until no thread still
 * uses the track before the engine frees it.
 */
#include "fault_signal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

struct slot {
	int signo;
	_Atomic(struct track *) track;
	_Atomic int inflight;
	_Atomic int owned;
	struct sigaction prev;
};

static struct slot slots[2] = { { .signo = SIGBUS }, { .signo = SIGSEGV } };

static struct slot *slot_for(int signo)
{
	return signo == SIGBUS ? &slots[0] : signo == SIGSEGV ? &slots[1] : NULL;
}

static void chain(struct slot *s, int sig, siginfo_t *si, void *uc)
{
	if (s->prev.sa_flags & SA_SIGINFO) {
		s->prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (s->prev.sa_handler == SIG_DFL || s->prev.sa_handler == SIG_IGN) {
		/* A real crash: let the default action happen when the faulting
		 * instruction runs again. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(sig, &dfl, NULL);
		return;
	}
	s->prev.sa_handler(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	struct slot *s = slot_for(sig);
	if (!s)
		return;
	atomic_fetch_add(&s->inflight, 1);
	struct track *t = atomic_load(&s->track);
	enum track_fault_result r = TRACK_NOT_OURS;
	if (t)
		r = track_fault(t, (uint64_t)(uintptr_t)si->si_addr, TRACK_FAULT_INLINE);
	atomic_fetch_sub(&s->inflight, 1);
	if (r == TRACK_NOT_OURS)
		chain(s, sig, si, uc);
	errno = saved_errno;
}

int fault_signal_install(int signo, struct track *t, struct bgsnap_err *err)
{
	struct slot *s = slot_for(signo);
	if (!s)
		return err_set(err, -EINVAL, "internal: no fault path for signal %d", signo);
	int zero = 0;
	if (!atomic_compare_exchange_strong(&s->owned, &zero, 1))
		return err_set(err, -EBUSY, "another snapshot in this process already takes %s faults",
		               strsignal(signo));
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	atomic_store(&s->track, t);
	if (sigaction(signo, &sa, &s->prev) < 0) {
		int e = -errno;
		atomic_store(&s->track, NULL);
		atomic_store(&s->owned, 0);
		return err_sys(err, e, "cannot install the %s handler", strsignal(signo));
	}
	return 0;
}

void fault_signal_remove(int signo)
{
	struct slot *s = slot_for(signo);
	if (!s || !atomic_load(&s->owned))
		return;
	struct sigaction cur;
	if (sigaction(signo, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault)
		sigaction(signo, &s->prev, NULL);
	atomic_store(&s->track, NULL);
	while (atomic_load(&s->inflight)) {
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&s->owned, 0);
}
