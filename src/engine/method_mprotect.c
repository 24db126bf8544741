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
 * Protecting removes PROT_WRITE only, mapping by mapping; unprotecting gives
 * each mapping back exactly the protection the host had (struct mp_span),
 * so code in an rwx region keeps running during the snapshot.
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
#include "os/proc_maps.h"
#include "os/region_check.h"
#include "engine/track.h"

/* A stretch of the regions with one protection, as the host had it. */
struct mp_span {
	uint64_t lo, hi;
	int prot;
};

struct mprotect_priv {
	int signal_installed;
	/* Every mapping of every region, clipped to it, in address order,
	 * neighbours of equal protection merged.  Protecting removes only
	 * PROT_WRITE from a span; unprotecting gives it back exactly its
	 * protection (code in an rwx region keeps running). */
	struct mp_span *spans;
	size_t nspans, cap;
};

/* mprotect of one run, 0 or -errno.  Async-signal-safe. */
typedef int (*mp_call_fn)(uint64_t addr, uint64_t len, int prot);

static int call_once(uint64_t addr, uint64_t len, int prot)
{
	return mprotect((void *)(uintptr_t)addr, len, prot) == 0 ? 0 : -errno;
}

/* ENOMEM: too many mappings for now; the writer's sweep merges them.  Up
 * to about two seconds, then give up. */
static int call_patient(uint64_t addr, uint64_t len, int prot)
{
	for (int tries = 0;; tries++) {
		int r = call_once(addr, len, prot);
		if (!r || (r != -ENOMEM && r != -EAGAIN) || tries >= 20000)
			return r;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
}

/* Gives every span in [addr, addr+len) its own protection, without
 * PROT_WRITE if `protect`, one call per span.  Async-signal-safe. */
static int span_apply(const struct mprotect_priv *p, uint64_t addr, uint64_t len, int protect, mp_call_fn call)
{
	uint64_t end = addr + len;
	size_t lo = 0, hi = p->nspans;
	while (lo < hi) {   /* the first span ending after addr */
		size_t mid = lo + (hi - lo) / 2;
		if (p->spans[mid].hi <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < p->nspans && p->spans[i].lo < end; i++) {
		uint64_t a = p->spans[i].lo > addr ? p->spans[i].lo : addr;
		uint64_t b = p->spans[i].hi < end ? p->spans[i].hi : end;
		int r = call(a, b - a, protect ? p->spans[i].prot & ~PROT_WRITE : p->spans[i].prot);
		if (r)
			return r;
	}
	return 0;
}

static int mp_unprotect(struct track *t, uint64_t addr, uint64_t len)
{
	return span_apply(t->method, addr, len, 0, call_patient);
}

/* In the pre-phase nothing is saved yet and no sweep merges mappings
 * behind us: when the kernel refuses another split (vm.max_map_count), the
 * whole region gets its write permission back (one mapping again) and the
 * pause protects everything.  Async-signal-safe. */
static int mp_unprotect_fault(struct track *t, uint64_t addr, uint64_t len, int prephase)
{
	if (!prephase)
		return mp_unprotect(t, addr, len);
	int r = span_apply(t->method, addr, len, 0, call_once);
	return r == -ENOMEM ? track_prephase_give_up(t, addr) : r;
}

static int mp_protect_all(struct track *t)
{
	const struct mprotect_priv *p = t->method;
	for (size_t i = 0; i < p->nspans; i++) {
		int r = call_once(p->spans[i].lo, p->spans[i].hi - p->spans[i].lo, p->spans[i].prot & ~PROT_WRITE);
		if (r)
			return r;
	}
	return 0;
}

static int mp_protect_range(struct track *t, uint64_t addr, uint64_t len)
{
	return span_apply(t->method, addr, len, 1, call_once);
}

struct span_ctx {
	struct mprotect_priv *p;
	uint64_t lo, hi;   /* the region */
	struct bgsnap_err *err;
};

static int add_span(const struct maps_entry *m, void *arg)
{
	struct span_ctx *c = arg;
	struct mprotect_priv *p = c->p;
	int prot = (m->perms[0] == 'r' ? PROT_READ : 0) | (m->perms[1] == 'w' ? PROT_WRITE : 0) |
	           (m->perms[2] == 'x' ? PROT_EXEC : 0);
	uint64_t lo = m->lo > c->lo ? m->lo : c->lo, hi = m->hi < c->hi ? m->hi : c->hi;
	if (p->nspans && p->spans[p->nspans - 1].hi == lo && p->spans[p->nspans - 1].prot == prot) {
		p->spans[p->nspans - 1].hi = hi;
		return 0;
	}
	if (p->nspans == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 8;
		struct mp_span *ns = realloc(p->spans, nc * sizeof(*ns));
		if (!ns)
			return err_set(c->err, -ENOMEM, "out of memory");
		p->spans = ns;
		p->cap = nc;
	}
	p->spans[p->nspans++] = (struct mp_span){ lo, hi, prot };
	return 0;
}

/* Records the protection of every mapping of the regions (in address order:
 * regions may have been added in any order). */
static int record_spans(struct track *t)
{
	struct bgsnap_engine *e = t->e;
	uint32_t n = e->region_count;
	uint64_t done = 0;
	for (uint32_t k = 0; k < n; k++) {
		/* The lowest region above the last one: n is small. */
		uint32_t next = n;
		for (uint32_t i = 0; i < n; i++) {
			uint64_t a = (uint64_t)(uintptr_t)e->regions[i].addr;
			if (a >= done && (next == n || a < (uint64_t)(uintptr_t)e->regions[next].addr))
				next = i;
		}
		struct region *rg = &e->regions[next];
		struct span_ctx c = { t->method, (uint64_t)(uintptr_t)rg->addr, (uint64_t)(uintptr_t)rg->addr + rg->len,
		                      &e->err };
		int r = maps_walk(rg->addr, rg->len, add_span, &c, &e->err);
		if (r)
			return r;
		done = c.hi;
	}
	return 0;
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
	int r = record_spans(t);
	if (r)
		return r;
	r = fault_signal_install(SIGSEGV, t, &e->err);
	if (r)
		return r;
	p->signal_installed = 1;
	/* As the uffd methods: protect now, in the pause only what was
	 * written meanwhile (each such page is a mapping of its own until
	 * then). */
	return e->opts.pre_protect ? track_pre_protect(t) : 0;
}

/* The child's copy of the regions gets the host's protection back: it has
 * no writer, and its faults would wait for one forever. */
static void mp_fork_child(struct track *t)
{
	const struct mprotect_priv *p = t->method;
	for (size_t i = 0; i < p->nspans; i++)
		call_once(p->spans[i].lo, p->spans[i].hi - p->spans[i].lo, p->spans[i].prot);
}

static void mp_release(struct track *t)
{
	struct mprotect_priv *p = t->method;
	free(p->spans);
}

static const struct track_method mp_track = {
	.priv_size = sizeof(struct mprotect_priv),
	.prepare = mp_prepare,
	.protect_all = mp_protect_all,
	.protect_range = mp_protect_range,
	.unprotect = mp_unprotect,
	.unprotect_fault = mp_unprotect_fault,
	.writer_end = mp_writer_end,
	.release = mp_release,
	.fork_child = mp_fork_child,
};

/* No probe: mprotect and signals work everywhere. */
const struct method_ops method_mprotect_ops = {
	.method = BGSNAP_METHOD_MPROTECT,
	.track = &mp_track,
	TRACK_LIFE_CYCLE,
};
