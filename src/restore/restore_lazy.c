/*
 * restore_lazy.c - lazy restore: the targets are registered for missing
 * faults and handed back at once; pages arrive on first touch or from the
 * background prefetch, whichever comes first.
 *
 * Threads and what each owns:
 *  - handler: reads fault messages from the userfaultfd and serves each with
 *    a DEMAND_PAGES window around the faulting page, read through the
 *    caller's reader (bgsnap_reader_read_page, under `rmu`);
 *  - prefetch: reads the file in order, a few MiB of records per pread,
 *    has the reader check each record (reader_run_check, which touches no
 *    reader state) and installs its pages with UFFDIO_COPY/ZEROPAGE; a page
 *    the handler installed meanwhile comes back EEXIST and is skipped.
 *    When the pass ends every page is in (or poisoned).
 * The reader is borrowed: opening a second one would cost an index parse
 * before the memory is usable.  The kernel arbitrates between the two
 * threads: a page is installed exactly once (UFFDIO_COPY/ZEROPAGE fail with
 * EEXIST on a present page), and a waiter is woken by whichever install
 * covers its page (plus UFFDIO_WAKE on EEXIST).
 *
 * hugetlb targets (2 MiB or 1 GiB pages) can only be filled a whole huge page at a
 * time: a fault gets its huge page (serve_huge), and the prefetch skips
 * them in its record pass and fills them huge page by huge page.
 *
 * Shared targets (memfd/shmem, shared hugetlb) are registered for missing
 * faults like private ones: "missing" is then "not in the file's page
 * cache", and UFFDIO_COPY/ZEROPAGE allocates the page, fills it and adds it
 * to the file in one step, so no mapping of the file can see it half
 * written and two installers still meet EEXIST.  A page that another
 * mapping of the file (or a read/write on its descriptor) brought in
 * before the restore got to it holds zeros, not the snapshot, and also
 * comes back EEXIST: the counts then do not add up (every page is
 * installed exactly once by this restore otherwise), and the end of the
 * restore reports it (-EBUSY) instead of handing over wrong memory
 * silently.
 *
 * A page that cannot be read (I/O error, truncation, checksum) is poisoned
 * (UFFDIO_POISON: SIGBUS on access; PROT_NONE where the kernel lacks it),
 * never left missing (a hung thread) nor zero-filled (silent corruption).
 * The prefetch always ends with every page in or poisoned ("settled"),
 * also when stopped early.
 *
 * fork(): the child's copy of a target keeps the pages present at fork and
 * loses the registration, so a page still missing would read as zeros
 * there.  A pthread_atfork handler therefore holds every fork() of the
 * process until each running lazy restore has settled, and keeps new ones
 * from starting until the fork is done; the child then holds complete
 * memory.  (Following the child with UFFD_FEATURE_EVENT_FORK would mean
 * filling each child's missing pages too, from a second pass over the
 * file, and every UFFDIO_COPY into the parent fails with EAGAIN while a
 * fork event is unread: docs/RESTORE.md.)
 */
#include "bgsnap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util/abi.h"
#include "util/clock.h"
#include "util/err.h"
#include "format/format.h"
#include "format/reader.h"
#include "restore/restore_int.h"
#include "os/uffd_loop.h"
#include "os/uffd_sys.h"
#include "util/thread.h"

#define DEMAND_PAGES   16u    /* 64 KiB around a fault: neighbours come soon */

typedef unsigned long long ull;

struct bgsnap_lazy {
	struct rst_target *t;
	unsigned n;
	int *target_of;                /* region -> target index, -1 if none     */
	int uffd;
	struct uffd_loop handler;      /* serves the faults                      */
	int poison;                    /* UFFD_FEATURE_POISON granted            */
	bgsnap_reader *r;              /* borrowed; used under rmu only          */
	pthread_mutex_t rmu;
	pthread_t prefetch;
	int have_prefetch, registered;
	atomic_int stop, done, joined;
	uint64_t t0_ns;
	_Atomic uint64_t usable_us, total_us, pages_total, demand, prefetched, zero, failed, faults;
	pthread_mutex_t mu;
	struct bgsnap_err err;         /* first failure; guarded by mu           */
	atomic_int error;
	uint8_t *hbuf;
	uint64_t *unit;                /* per target: pages per install, 512 for
	                                  2 MiB hugetlb memory (262144 for 1 GiB), else 1 */
	int any_shared;                /* a target is MAP_SHARED memory          */
	/* Guarded by fork_mu: */
	bgsnap_lazy *next;             /* in the running list                    */
	int listed, settled;
	int orphan;                    /* a fork child's copy: its threads are the parent's */
};

/* The running lazy restores, for the fork handlers.  fork_cv is broadcast
 * when one settles or leaves the list. */
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fork_cv = PTHREAD_COND_INITIALIZER;
static bgsnap_lazy *running;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* Before fork(): wait until every running restore settled; fork_mu stays
 * held until the fork is done, so that none starts meanwhile. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&fork_mu);
	for (;;) {
		bgsnap_lazy *l = running;
		while (l && l->settled)
			l = l->next;
		if (!l)
			return;
		pthread_cond_wait(&fork_cv, &fork_mu);
	}
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&fork_mu);
}

/* The child has the parent's restores in memory but none of their
 * threads: whatever it does with them must not wait for those. */
static void fork_child(void)
{
	for (bgsnap_lazy *l = running; l; l = l->next) {
		l->orphan = 1;
		l->listed = 0;
	}
	running = NULL;
	pthread_mutex_unlock(&fork_mu);
}

static void fork_handlers_install(void)
{
	(void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void list_add(bgsnap_lazy *l)
{
	pthread_mutex_lock(&fork_mu);
	l->next = running;
	running = l;
	l->listed = 1;
	pthread_mutex_unlock(&fork_mu);
}

static void set_settled(bgsnap_lazy *l)
{
	pthread_mutex_lock(&fork_mu);
	l->settled = 1;
	pthread_cond_broadcast(&fork_cv);
	pthread_mutex_unlock(&fork_mu);
}

static void list_remove(bgsnap_lazy *l)
{
	pthread_mutex_lock(&fork_mu);
	if (l->listed) {
		bgsnap_lazy **p = &running;
		while (*p != l)
			p = &(*p)->next;
		*p = l->next;
		l->listed = 0;
		pthread_cond_broadcast(&fork_cv);
	}
	pthread_mutex_unlock(&fork_mu);
}

static void lazy_fail(bgsnap_lazy *l, const struct bgsnap_err *e)
{
	pthread_mutex_lock(&l->mu);
	if (!l->err.code)
		l->err = *e;
	pthread_mutex_unlock(&l->mu);
	int zero = 0;
	atomic_compare_exchange_strong(&l->error, &zero, e->code ? e->code : -EIO);
}

/*
 * Restores pages [first, first+count) of target t with reader r into buf.
 * Pages that fail to read are poisoned one by one (so a bad record costs
 * only its own pages); returns the counts through *c.
 */
static void serve(bgsnap_lazy *l, uint8_t *buf, const struct rst_target *t, uint64_t first,
                  uint64_t count, struct rst_counts *c)
{
	struct bgsnap_err e = { 0, "" };
	uint64_t bad;
	uint64_t p = first, end = first + count;
	while (p < end) {
		pthread_mutex_lock(&l->rmu);
		int rc = rst_fill(l->r, t->region, p, end - p, buf, &bad, &e);
		pthread_mutex_unlock(&l->rmu);
		uint64_t good = rc < 0 ? bad - p : end - p;
		if (good && rst_install(l->uffd, t->dst + p * PAGE_SIZE_, buf, good, 0, c, &e) < 0) {
			lazy_fail(l, &e);
			/* The window is in an unknown state: poison what is missing so
			 * nobody waits on it. */
			int64_t k = rst_poison(l->uffd, t->dst + p * PAGE_SIZE_, end - p, l->poison, &e);
			if (k > 0)
				atomic_fetch_add(&l->failed, (uint64_t)k);
			return;
		}
		if (rc == 0)
			return;
		lazy_fail(l, &e);
		struct bgsnap_err pe = { 0, "" };
		int64_t k = rst_poison(l->uffd, t->dst + bad * PAGE_SIZE_, 1, l->poison, &pe);
		if (k < 0)
			lazy_fail(l, &pe);
		else
			atomic_fetch_add(&l->failed, (uint64_t)k);
		p = bad + 1;
		e.code = 0;
	}
}

/* One UFFDIO_COPY of a whole huge page: 1 installed, 0 already there (its
 * waiters woken), or -errno. */
static int install_huge(int uffd, uint8_t *dst, const uint8_t *buf, uint64_t len, struct bgsnap_err *e)
{
	for (int tries = 0;; tries++) {
		struct uffdio_copy c = { .dst = (uintptr_t)dst, .src = (uintptr_t)buf, .len = len, .mode = 0 };
		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			return 1;
		if (errno == EEXIST) {
			struct uffdio_range w = { (uintptr_t)dst, len };
			(void)ioctl(uffd, UFFDIO_WAKE, &w);
			return 0;
		}
		if ((errno != EAGAIN && errno != EINTR) || tries >= 1000)
			return err_sys(e, -errno, "UFFDIO_COPY of the %llu-byte huge page at %p", (ull)len, (void *)dst);
	}
}

/*
 * The same as serve() for hugetlb memory, where a missing page can only be
 * filled whole: huge page [first, first+n) of target t read into buf and
 * installed with one UFFDIO_COPY.  A page that cannot be read poisons its
 * whole huge page.  Counts into demand or prefetched.
 */
static void serve_huge(bgsnap_lazy *l, uint8_t *buf, const struct rst_target *t, uint64_t first, uint64_t n,
                       int prefetch)
{
	struct bgsnap_err e = { 0, "" };
	uint64_t bad;
	uint8_t *dst = t->dst + first * PAGE_SIZE_;
	pthread_mutex_lock(&l->rmu);
	int rc = rst_fill(l->r, t->region, first, n, buf, &bad, &e);
	pthread_mutex_unlock(&l->rmu);
	if (rc == 0)
		rc = install_huge(l->uffd, dst, buf, n * PAGE_SIZE_, &e);
	if (rc > 0)
		atomic_fetch_add(prefetch ? &l->prefetched : &l->demand, n);
	if (rc >= 0)
		return;
	lazy_fail(l, &e);
	struct bgsnap_err pe = { 0, "" };
	int64_t k = rst_poison(l->uffd, dst, n, l->poison, &pe);
	if (k < 0)
		lazy_fail(l, &pe);
	else
		atomic_fetch_add(&l->failed, (uint64_t)k);
}

static const struct rst_target *find_target(const bgsnap_lazy *l, uint64_t addr, uint64_t *page)
{
	for (unsigned i = 0; i < l->n; i++) {
		uint64_t a = (uintptr_t)l->t[i].dst;
		if (addr >= a && addr - a < l->t[i].pages * PAGE_SIZE_) {
			*page = (addr - a) / PAGE_SIZE_;
			return &l->t[i];
		}
	}
	return NULL;
}

/* The uffd_loop callbacks; ctx is the restore.  Each missing-page fault is
 * served with the DEMAND_PAGES window around it. */
static void loop_fault(void *ctx, uint64_t addr, uint64_t flags, int token)
{
	bgsnap_lazy *l = ctx;
	atomic_fetch_add(&l->faults, 1);
	uint64_t page;
	const struct rst_target *t = find_target(l, addr, &page);
	if (!t)
		return;   /* cannot happen: only targets are registered */
	uint64_t unit = l->unit[t - l->t];
	if (unit > 1) {
		serve_huge(l, l->hbuf, t, page - page % unit, unit, 0);
		return;
	}
	uint64_t first = page - page % DEMAND_PAGES;
	uint64_t count = t->pages - first < DEMAND_PAGES ? t->pages - first : DEMAND_PAGES;
	struct rst_counts c = { 0, 0, 0 };
	serve(l, l->hbuf, t, first, count, &c);
	atomic_fetch_add(&l->demand, c.copied + c.zeroed);
	atomic_fetch_add(&l->zero, c.zeroed);
}

static void loop_failed(void *ctx, int code, const char *what)
{
	struct bgsnap_err e = { 0, "" };
	err_sys(&e, code, "%s", what);
	lazy_fail(ctx, &e);
}

static const struct uffd_loop_ops loop_ops = {
	.fault = loop_fault,
	.failed = loop_failed,
};

static void unregister_all(bgsnap_lazy *l)
{
	if (!l->registered)
		return;
	for (unsigned i = 0; i < l->n; i++) {
		struct uffdio_range u = { (uintptr_t)l->t[i].dst, l->t[i].pages * PAGE_SIZE_ };
		(void)ioctl(l->uffd, UFFDIO_UNREGISTER, &u);
	}
	l->registered = 0;
}

/* One record for the prefetch (rec: its bytes, or NULL if they could not be
 * read, with the reason in *e): checked, then installed; pages the handler
 * installed meanwhile come back EEXIST and are skipped.  A record that
 * cannot be restored has exactly its pages poisoned. */
static void prefetch_record(bgsnap_lazy *l, size_t i, const struct reader_run *x, const uint8_t *rec,
                            struct reader_dec **dec, struct bgsnap_err *e)
{
	const struct rst_target *t = &l->t[l->target_of[x->region]];
	const uint8_t *src = NULL;
	int rc = rec ? reader_run_pages(l->r, i, rec, dec, &src, e) : (e->code ? e->code : -EIO);
	/* Only the record's pieces of the image: a chain's newer files hold
	 * the rest, and their own records install them. */
	uint64_t from = 0, pf, pc;
	while (rc == 0 && reader_run_piece(l->r, x, &from, &pf, &pc)) {
		struct rst_counts c = { 0, 0, 0 };
		rc = rst_fill_run(l->uffd, t->dst + pf * PAGE_SIZE_, src ? src + (pf - x->first) * PAGE_SIZE_ : NULL, pc,
		                  0, &c, e);
		atomic_fetch_add(&l->prefetched, c.copied + c.zeroed);
		atomic_fetch_add(&l->zero, c.zeroed);
	}
	if (rc == 0)
		return;
	struct bgsnap_err why = { 0, "" };
	err_set(&why, rc, "region %u pages %llu..%llu: %s", x->region, (ull)x->first, (ull)(x->first + x->count - 1),
	        e->msg[0] ? e->msg : strerror(-rc));
	lazy_fail(l, &why);
	struct bgsnap_err pe = { 0, "" };
	for (from = 0; reader_run_piece(l->r, x, &from, &pf, &pc);) {
		int64_t k = rst_poison(l->uffd, t->dst + pf * PAGE_SIZE_, pc, l->poison, &pe);
		if (k < 0)
			lazy_fail(l, &pe);
		else
			atomic_fetch_add(&l->failed, (uint64_t)k);
	}
}

/* The end of the prefetch, however it ends: what is still missing (a
 * stop, a failure) must fail loudly, not read as zeros once unregistered
 * or in a fork child; then forks may go on. */
static void settle(bgsnap_lazy *l)
{
	if (!atomic_load(&l->done)) {
		struct bgsnap_err e = { 0, "" };
		for (unsigned i = 0; i < l->n; i++) {
			int64_t k = rst_poison(l->uffd, l->t[i].dst, l->t[i].pages, l->poison, &e);
			if (k > 0)
				atomic_fetch_add(&l->failed, (uint64_t)k);
		}
	}
	set_settled(l);
}

/* hugetlb targets, which records cannot fill (a record may cover part of a
 * huge page): huge page by huge page, through the random-access reader. */
static void prefetch_huge(bgsnap_lazy *l)
{
	for (unsigned i = 0; i < l->n && !atomic_load(&l->stop); i++) {
		uint64_t unit = l->unit[i];
		if (unit <= 1)
			continue;
		uint8_t *buf = aligned_alloc(PAGE_SIZE_, (size_t)(unit * PAGE_SIZE_));
		if (!buf) {
			struct bgsnap_err e = { 0, "" };
			err_set(&e, -ENOMEM, "out of memory for a huge page");
			lazy_fail(l, &e);
			return;   /* settle() poisons what is missing */
		}
		for (uint64_t p = 0; p < l->t[i].pages && !atomic_load(&l->stop); p += unit) {
			/* A huge page a fault brought in already is not read again
			 * (1 GiB of reading for a page that would come back EEXIST). */
			unsigned char v = 0;
			if (mincore(l->t[i].dst + p * PAGE_SIZE_, PAGE_SIZE_, &v) == 0 && (v & 1))
				continue;
			serve_huge(l, buf, &l->t[i], p, unit, 1);
		}
		free(buf);
	}
}

/* The prefetch reads the file in order, a slice of records per pread (the
 * reader's file-order access is safe next to the handler's read_page). */
static void *prefetch_main(void *arg)
{
	bgsnap_lazy *l = arg;
	struct bgsnap_err e = { 0, "" };
	struct rst_slice *slice = NULL;
	size_t ns = 0;
	uint64_t blen = 0;
	uint8_t *buf = NULL;
	struct reader_dec *dec = NULL;   /* CPAGES records decode here */
	if (rst_slices(l->r, &slice, &ns, &blen, &e) < 0 || !(buf = malloc((size_t)blen))) {
		if (!e.code)
			err_set(&e, -ENOMEM, "out of memory for the prefetch (%llu bytes)", (ull)blen);
		lazy_fail(l, &e);
		free(slice);
		settle(l);
		return NULL;
	}
	for (size_t k = 0; k < ns && !atomic_load(&l->stop); k++) {
		struct reader_run x, y;
		reader_run_get(l->r, slice[k].first, &x);
		reader_run_get(l->r, slice[k].end - 1, &y);
		uint64_t base = x.offset;
		struct bgsnap_err se = { 0, "" };
		int fd = x.fd;
		int whole = rst_pread_all(fd, buf, y.offset + y.span - base, base, &se) == 0;
		for (size_t i = slice[k].first; i < slice[k].end; i++) {
			reader_run_get(l->r, i, &x);
			if (l->target_of[x.region] < 0 || l->unit[l->target_of[x.region]] > 1)
				continue;
			struct bgsnap_err re = { 0, "" };
			const uint8_t *rec = buf + (x.offset - base);
			/* The slice did not read whole: each record on its own, so
			 * only the unreadable ones fail. */
			if (!whole)
				rec = rst_pread_all(fd, buf, x.span, x.offset, &re) == 0 ? buf : NULL;
			prefetch_record(l, i, &x, rec, &dec, &re);
		}
	}
	free(buf);
	free(slice);
	reader_dec_free(dec);
	prefetch_huge(l);
	if (!atomic_load(&l->stop)) {
		/* Every page is in or poisoned: no fault can wait any more. */
		atomic_store(&l->total_us, us_since(l->t0_ns));
		atomic_store(&l->done, 1);
	}
	settle(l);
	return NULL;
}

/* Every target is private anonymous, shmem or hugetlb memory not
 * yet touched (a populated page would keep its old content); sums their
 * pages.  For shmem, mincore sees the file's page cache, so a page brought
 * in through another mapping counts as populated too; for hugetlb it sees
 * only this mapping's pages (the count check at the end catches the
 * rest). */
static int check_lazy_targets(bgsnap_lazy *l, struct bgsnap_err *e)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < l->n; i++) {
		struct rst_target *t = &l->t[i];
		uint64_t first;
		int shared = 0;
		int rc = rst_private_anon(t->dst, t->pages * PAGE_SIZE_, e);
		l->unit[i] = 1;
		if (rc == 0)
			rc = rst_lazy_other_target(i, t->dst, t->pages * PAGE_SIZE_, &l->unit[i], &shared, e);
		if (rc < 0)
			return rc;
		l->any_shared |= shared;
		int64_t pop = rst_populated(t->dst, t->pages, &first, e);
		if (pop < 0)
			return (int)pop;
		if (pop > 0)
			return err_set(e, -EINVAL, "target %u at %p: %lld of %llu pages are already populated (first: "
			               "page %llu); lazy restore needs untouched memory (%s), or they would keep their old "
			               "content", i, (void *)t->dst, (long long)pop, (ull)t->pages, (ull)first,
			               shared ? "a fresh memfd, or its pages removed with fallocate(FALLOC_FL_PUNCH_HOLE) "
			                        "or MADV_REMOVE first"
			                      : "a fresh mmap, or MADV_DONTNEED first");
		total += t->pages;
	}
	atomic_store(&l->pages_total, total);
	return 0;
}

/* Which target each region of the file goes to (-1: none). */
static int map_regions(bgsnap_lazy *l, struct bgsnap_err *e)
{
	struct bgsnap_file_info fi;
	bgsnap_reader_info(l->r, &fi, sizeof fi);
	if (!fi.file_bytes || reader_fd(l->r) < 0)
		return err_set(e, -ESPIPE, "lazy restore needs a random-access reader (bgsnap_reader_open)");
	if (reader_partial(l->r))
		return err_set(e, -EINVAL, "%s is incremental, read without its chain: restore it through "
		               "bgsnap_reader_open or bgsnap_reader_open_chain", bgsnap_reader_path(l->r));
	if (!(l->target_of = malloc(fi.region_count * sizeof(*l->target_of))))
		return err_set(e, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < fi.region_count; i++)
		l->target_of[i] = -1;
	for (unsigned i = 0; i < l->n; i++)
		l->target_of[l->t[i].region] = (int)i;
	return 0;
}

/* Registers every target for missing faults; on failure l->n says how many
 * are registered, for the unregistering in bgsnap_lazy_free. */
static int register_targets(bgsnap_lazy *l, struct bgsnap_err *e)
{
	unsigned n = l->n;
	for (unsigned i = 0; i < n; i++) {
		/* hugetlb has no UFFDIO_ZEROPAGE: serve_huge copies zero pages. */
		uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_WAKE) |
		                (l->unit[i] > 1 ? 0 : 1ull << _UFFDIO_ZEROPAGE);
		struct uffdio_register reg = { .range = { (uintptr_t)l->t[i].dst, l->t[i].pages * PAGE_SIZE_ },
		                               .mode = UFFDIO_REGISTER_MODE_MISSING };
		if (ioctl(l->uffd, UFFDIO_REGISTER, &reg) < 0) {
			int rc = errno == EINVAL && l->any_shared
			                 ? err_set(e, -ENOTSUP, "target %u at %p: the kernel does not register this "
			                           "mapping for missing faults: shared memory must be shmem (memfd, tmpfs, "
			                           "MAP_SHARED|MAP_ANONYMOUS) or hugetlb; restore it eagerly "
			                           "(bgsnap_restore)", i, (void *)l->t[i].dst)
			                 : err_sys(e, -errno, "target %u at %p: UFFDIO_REGISTER (missing faults)", i,
			                           (void *)l->t[i].dst);
			l->n = i;
			l->registered = 1;
			return rc;
		}
		l->registered = 1;
		if ((reg.ioctls & need) != need) {
			l->n = i + 1;
			return err_set(e, -ENOTSUP, "target %u: the kernel offers no UFFDIO_COPY/ZEROPAGE on it", i);
		}
	}
	return 0;
}

/* The userfaultfd, its fault handler and the demand buffer. */
static int open_handler(bgsnap_lazy *l, struct bgsnap_err *e)
{
	uint64_t granted = 0;
	int rc = l->uffd = uffd_open(UFFD_FEATURE_POISON, 0, &granted, e);
	if (rc < 0)
		return rc;
	l->poison = !!(granted & UFFD_FEATURE_POISON);
	if ((rc = uffd_loop_init(&l->handler, l->uffd, &loop_ops, l)) < 0)
		return err_sys(e, rc, "eventfd");
	uint64_t pages = DEMAND_PAGES;
	for (unsigned i = 0; i < l->n; i++)
		pages = l->unit[i] > pages ? l->unit[i] : pages;
	l->hbuf = aligned_alloc(PAGE_SIZE_, (size_t)(pages * PAGE_SIZE_));
	return l->hbuf ? 0 : err_set(e, -ENOMEM, "out of memory");
}

int bgsnap_lazy_restore_start(bgsnap_lazy **out, bgsnap_reader *r, const struct bgsnap_restore_target *targets,
                              unsigned n, char *err, size_t err_len)
{
	uint64_t t0 = now_ns();
	*out = NULL;
	if (err && err_len)
		err[0] = '\0';
	bgsnap_lazy *l = calloc(1, sizeof(*l));
	if (!l) {
		if (err && err_len)
			snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	l->uffd = l->handler.stop_fd = -1;
	l->t0_ns = t0;
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->rmu, NULL);
	l->r = r;
	struct bgsnap_err e = { 0, "" };
	int rc;
	if (!r) {
		rc = err_set(&e, -EINVAL, "no reader");
		goto fail;
	}
	if ((rc = rst_check_targets(r, targets, n, &l->t, &e)) < 0)
		goto fail;
	l->n = n;
	if (!(l->unit = calloc(n, sizeof(*l->unit)))) {
		rc = err_set(&e, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = check_lazy_targets(l, &e)) < 0 || (rc = map_regions(l, &e)) < 0 || (rc = open_handler(l, &e)) < 0)
		goto fail;
	/* Listed before a page can go missing: from here a fork waits. */
	pthread_once(&fork_once, fork_handlers_install);
	list_add(l);
	if ((rc = register_targets(l, &e)) < 0)
		goto fail;
	if ((rc = uffd_loop_start(&l->handler, "bgsnap-lazy")) < 0) {
		err_set(&e, rc, "starting the fault handler thread: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = thread_start(&l->prefetch, "bgsnap-prefetch", prefetch_main, l)) < 0) {
		err_set(&e, rc, "starting the prefetch thread: %s", strerror(-rc));
		goto fail;
	}
	l->have_prefetch = 1;
	atomic_store(&l->usable_us, us_since(t0));
	*out = l;
	return 0;
fail:
	if (err && err_len)
		snprintf(err, err_len, "%s", e.msg[0] ? e.msg : strerror(-rc));
	/* Nothing was touched yet (no thread can have faulted: we have not
	 * returned), so unregistering is all it takes. */
	atomic_store(&l->done, 1);
	bgsnap_lazy_free(l);
	return rc < 0 ? rc : -EIO;
}

/* Joins the threads once the prefetch ended (done or stopped). */
static void finish(bgsnap_lazy *l)
{
	int zero = 0;
	if (!atomic_compare_exchange_strong(&l->joined, &zero, 1))
		return;
	if (l->orphan) {
		/* A fork child's copy: the threads are the parent's, and the
		 * registration did not follow the fork. */
		l->handler.running = 0;
		l->registered = 0;
		return;
	}
	/* The prefetch settles every page (in, or poisoned) before it ends. */
	if (l->have_prefetch)
		pthread_join(l->prefetch, NULL);
	/* The handler goes first: a fault message it read before the page was
	 * prefetched would otherwise meet an unregistered range (ENOENT) and
	 * fail a restore that is complete.  Every page is in or poisoned, so
	 * no thread needs it any more. */
	uffd_loop_stop(&l->handler);
	unregister_all(l);
	/* Both threads are stopped: the counts are final.  Each page was
	 * installed by exactly one of them, unless something else brought it
	 * into a shared target's file first (it then holds that content). */
	uint64_t total = atomic_load(&l->pages_total);
	uint64_t got = atomic_load(&l->demand) + atomic_load(&l->prefetched) + atomic_load(&l->failed);
	if (l->any_shared && atomic_load(&l->done) && !atomic_load(&l->error) && got != total) {
		struct bgsnap_err e = { 0, "" };
		err_set(&e, -EBUSY, "%llu of %llu pages were already in a shared target's file when the restore came "
		        "to them (written through another mapping of the file or its descriptor during the restore): "
		        "they hold that content, not the snapshot's", (ull)(total - got), (ull)total);
		lazy_fail(l, &e);
	}
}

int bgsnap_lazy_wait(bgsnap_lazy *l)
{
	if (!l)
		return -EINVAL;
	finish(l);
	return atomic_load(&l->error);
}

int bgsnap_lazy_get_stats(const bgsnap_lazy *l, struct bgsnap_lazy_stats *user, size_t user_size)
{
	if (!l || !user)
		return -EINVAL;
	struct bgsnap_lazy_stats s, *out = &s;
	memset(out, 0, sizeof(*out));
	out->usable_us = atomic_load(&l->usable_us);
	out->total_us = atomic_load(&l->total_us);
	out->pages_total = atomic_load(&l->pages_total);
	out->pages_demand = atomic_load(&l->demand);
	out->pages_prefetched = atomic_load(&l->prefetched);
	out->pages_zero = atomic_load(&l->zero);
	out->pages_failed = atomic_load(&l->failed);
	out->faults = atomic_load(&l->faults);
	out->done = atomic_load(&l->done);
	out->error = atomic_load(&l->error);
	abi_copy_out(user, user_size, out, sizeof(*out));
	return 0;
}

const char *bgsnap_lazy_errmsg(const bgsnap_lazy *l)
{
	if (!l)
		return "no lazy restore";
	return atomic_load(&((bgsnap_lazy *)l)->error) ? l->err.msg : "";
}

void bgsnap_lazy_free(bgsnap_lazy *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, 1);
	finish(l);
	list_remove(l);
	uffd_loop_destroy(&l->handler);
	if (l->uffd >= 0)
		close(l->uffd);
	free(l->hbuf);
	free(l->unit);
	free(l->target_of);
	free(l->t);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->rmu);
	free(l);
}
