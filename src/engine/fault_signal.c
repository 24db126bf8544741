/*
 * fault_signal.c - the in-thread fault path (see fault_signal.h).
 *
 * The handler is async-signal-safe: it reads the active track through an
 * atomic pointer, and track_fault() takes no lock and allocates nothing.
 * An in-flight counter lets fault_signal_remove() wait until no thread still
 * uses the track before the engine frees it.
 */
#include "engine/fault_signal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "util/clock.h"

#define RETIRED_MAX 16
#define RETIRE_GRACE_NS 2000000000ull

struct slot {
	int signo;
	_Atomic(struct track *) track;
	_Atomic int inflight;
	_Atomic int owned;
	struct sigaction prev;
	/* Ranges of the last run, for faults already raised but delivered after
	 * the run removed protection: retrying the access is all they need. */
	_Atomic uint64_t retired_lo[RETIRED_MAX], retired_hi[RETIRED_MAX];
	_Atomic unsigned nretired;
	_Atomic uint64_t retired_until; /* CLOCK_MONOTONIC ns */
};

static struct slot slots[2] = { { .signo = SIGBUS }, { .signo = SIGSEGV } };

static struct slot *slot_for(int signo)
{
	return signo == SIGBUS ? &slots[0] : signo == SIGSEGV ? &slots[1] : NULL;
}

static void chain(struct slot *s, int sig, siginfo_t *si, void *uc)
{
	/* Our handler runs with every signal blocked (see install); the
	 * host's runs with the mask the kernel would have given it. */
	sigset_t m = ((ucontext_t *)uc)->uc_sigmask;
	for (int i = 1; i < NSIG; i++)
		if (sigismember(&s->prev.sa_mask, i) == 1)
			sigaddset(&m, i);
	if (!(s->prev.sa_flags & SA_NODEFER))
		sigaddset(&m, sig);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
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

static int retired(struct slot *s, uint64_t addr)
{
	if (now_ns() >= atomic_load(&s->retired_until))
		return 0;
	unsigned n = atomic_load(&s->nretired);
	for (unsigned i = 0; i < n && i < RETIRED_MAX; i++)
		if (addr >= atomic_load(&s->retired_lo[i]) && addr < atomic_load(&s->retired_hi[i]))
			return 1;
	return 0;
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	struct slot *s = slot_for(sig);
	if (!s)
		return;
	atomic_fetch_add(&s->inflight, 1);
	struct track *t = atomic_load(&s->track);
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr;
	enum track_fault_result r = TRACK_NOT_OURS;
	if (t) {
		/* Only faults after the pause cost the host its snapshot. */
		int pre = atomic_load(&t->prephase);
		uint64_t t0 = now_ns();
		r = track_fault(t, addr, TRACK_FAULT_INLINE);
		if (r != TRACK_NOT_OURS && !pre)
			track_host_wait(t, now_ns() - t0, (uint32_t)gettid());
	}
	else if (retired(s, addr))
		r = TRACK_ALREADY_DONE;   /* protection is gone: just retry */
	atomic_fetch_sub(&s->inflight, 1);
	if (r == TRACK_NOT_OURS)
		chain(s, sig, si, uc);
	errno = saved_errno;
}

/*
 * A child forked while a run takes faults here inherits the handler and
 * the protected regions, but none of the threads that would save its
 * pages: its faults would wait forever.  In the child the run is none of
 * its business: the method makes the child's copy writable again (if it
 * protected it itself), and the handler passes every fault on, as if no
 * run were going.  Async-signal-safe, as a child handler of a
 * multithreaded process must be.
 */
static void forget_runs_in_child(void)
{
	for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
		struct slot *s = &slots[i];
		struct track *t = atomic_load(&s->track);
		if (t && t->m->fork_child)
			t->m->fork_child(t);
		atomic_store(&s->track, NULL);
		atomic_store(&s->retired_until, 0);
		atomic_store(&s->inflight, 0);
		atomic_store(&s->owned, 0);
	}
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_rc;

static void atfork_register(void)
{
	atfork_rc = pthread_atfork(NULL, NULL, forget_runs_in_child);
}

int fault_signal_install(int signo, struct track *t, struct bgsnap_err *err)
{
	struct slot *s = slot_for(signo);
	if (!s)
		return err_set(err, -EINVAL, "internal: no fault path for signal %d", signo);
	pthread_once(&atfork_once, atfork_register);
	if (atfork_rc)
		return err_sys(err, -atfork_rc, "cannot register the fork handler of the %s fault path",
		               strsignal(signo));
	int zero = 0;
	if (!atomic_compare_exchange_strong(&s->owned, &zero, 1))
		return err_set(err, -EBUSY, "another snapshot in this process already takes %s faults",
		               strsignal(signo));
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	/* Every signal blocked while we handle a fault: a host that stops
	 * its threads with a signal must not park one in the middle of a
	 * pre-phase fault, which the pause then waits for (pre_inflight). */
	sigfillset(&sa.sa_mask);
	atomic_store(&s->track, t);
	if (sigaction(signo, &sa, &old) < 0) {
		int e = -errno;
		atomic_store(&s->track, NULL);
		atomic_store(&s->owned, 0);
		return err_sys(err, e, "cannot install the %s handler", strsignal(signo));
	}
	/* Still ours from an earlier run: keep the host's handler as prev. */
	if (!((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == on_fault))
		s->prev = old;
	return 0;
}

/*
 * A thread may have faulted just before the run removed protection and get
 * its signal only now: restoring the host's handler at once would turn that
 * into a crash.  So the handler stays installed, and for a grace period
 * faults in the run's regions are answered by retrying the access; every
 * other fault goes to the host's handler as before.  The next run reuses
 * the installation.
 */
void fault_signal_remove(int signo, const struct track *t)
{
	struct slot *s = slot_for(signo);
	if (!s || !atomic_load(&s->owned))
		return;
	const struct bgsnap_engine *e = t->e;
	unsigned n = e->region_count < RETIRED_MAX ? e->region_count : RETIRED_MAX;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (uint32_t i = 0; i < e->region_count; i++) {
		uint64_t a = (uint64_t)(uintptr_t)e->regions[i].addr, b = a + e->regions[i].len;
		lo = a < lo ? a : lo;
		hi = b > hi ? b : hi;
		if (i < RETIRED_MAX) {
			atomic_store(&s->retired_lo[i], a);
			atomic_store(&s->retired_hi[i], b);
		}
	}
	if (e->region_count > RETIRED_MAX) {
		/* Too many to list: the envelope, for the grace period only. */
		atomic_store(&s->retired_lo[0], lo);
		atomic_store(&s->retired_hi[0], hi);
		n = 1;
	}
	atomic_store(&s->nretired, n);
	atomic_store(&s->retired_until, now_ns() + RETIRE_GRACE_NS);
	atomic_store(&s->track, NULL);
	while (atomic_load(&s->inflight)) {
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&s->owned, 0);
}
