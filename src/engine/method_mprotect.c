/*
 * method_mprotect.c - write tracking with PROT_READ and SIGSEGV, for kernels
 * and sandboxes without userfaultfd (seccomp-filtered containers, old or
 * stripped kernels).
 *
 * Faults are taken in the faulting thread (fault_signal.c) and saved by
 * track_fault(); the writer removes protection in long runs so that the
 * VMAs that mprotect split merge again behind the sweep.  Each isolated
 * faulted page costs up to two VMAs; when the kernel refuses to split more
 * (ENOMEM at vm.max_map_count) the page is already saved, so the faulting
 * thread only retries for a while (the sweep keeps merging) and never
 * corrupts the snapshot; if it still cannot, the run fails cleanly.
 *
 * Caveats (documented in the header): a kernel access to a protected page
 * (read(2) into a region) fails with EFAULT while the snapshot runs, and
 * MADV_DONTNEED of a region cannot be detected by this method.
 */
#include "engine/engine.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "engine/fault_signal.h"
#include "os/region_check.h"
#include "engine/track.h"

struct mprotect_priv {
	int signal_installed;
};

/* async-signal-safe: mprotect and nanosleep. */
static int mp_unprotect(struct track *t, uint64_t addr, uint64_t len)
{
	(void)t;
	for (int tries = 0;; tries++) {
		if (mprotect((void *)(uintptr_t)addr, len, PROT_READ | PROT_WRITE) == 0)
			return 0;
		int e = errno;
		/* ENOMEM: too many mappings for now; the writer's sweep merges
		 * them.  Up to about two seconds, then give up. */
		if ((e != ENOMEM && e != EAGAIN) || tries >= 20000)
			return -e;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
}

/* In the pre-phase nothing is saved yet and no sweep merges mappings
 * behind us: when the kernel refuses another split (vm.max_map_count), the
 * whole region gets its write permission back (one mapping again) and the
 * pause protects everything.  Async-signal-safe. */
static int mp_unprotect_fault(struct track *t, uint64_t addr, uint64_t len, int prephase)
{
	if (!prephase)
		return mp_unprotect(t, addr, len);
	if (mprotect((void *)(uintptr_t)addr, len, PROT_READ | PROT_WRITE) == 0)
		return 0;
	return errno == ENOMEM ? track_prephase_give_up(t, addr) : -errno;
}

static int mp_protect_all(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	for (uint32_t i = 0; i < e->region_count; i++)
		if (mprotect(e->regions[i].addr, e->regions[i].len, PROT_READ) < 0)
			return -errno;
	return 0;
}

static int mp_protect_range(struct track *t, uint64_t addr, uint64_t len)
{
	(void)t;
	return mprotect((void *)(uintptr_t)addr, len, PROT_READ) == 0 ? 0 : -errno;
}

static void mp_writer_end(struct track *t)
{
	struct mprotect_priv *p = t->method;
	if (p->signal_installed) {
		fault_signal_remove(SIGSEGV, t);
		p->signal_installed = 0;
	}
}

static int mp_prepare(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	struct mprotect_priv *p = t->method;
	for (uint32_t i = 0; i < e->region_count; i++) {
		int r = region_check_writable(e->regions[i].addr, e->regions[i].len, &e->err);
		if (r)
			return r;
	}
	int r = fault_signal_install(SIGSEGV, t, &e->err);
	if (r)
		return r;
	p->signal_installed = 1;
	/* As the uffd methods: protect now, in the pause only what was
	 * written meanwhile (each such page is a mapping of its own until
	 * then). */
	return e->opts.pre_protect ? track_pre_protect(t) : 0;
}

static const struct track_method mp_track = {
	.priv_size = sizeof(struct mprotect_priv),
	.prepare = mp_prepare,
	.protect_all = mp_protect_all,
	.protect_range = mp_protect_range,
	.unprotect = mp_unprotect,
	.unprotect_fault = mp_unprotect_fault,
	.writer_end = mp_writer_end,
};

/* No probe: mprotect and signals work everywhere. */
const struct method_ops method_mprotect_ops = {
	.method = BGSNAP_METHOD_MPROTECT,
	.track = &mp_track,
	TRACK_LIFE_CYCLE,
};
