/*
 * restore.c - eager restore (bgsnap_restore) and the helpers it shares with
 * lazy restore (restore_int.h).
 *
 * Pages come from the one parser: each worker thread has its own reader
 * (a reader is single-threaded) and reads through bgsnap_reader_read_page,
 * which checks each record's header against the index and its checksum
 * before any byte is used.
 *
 * Eager: the targets are cut in chunks of CHUNK_PAGES that the workers take
 * from a shared counter.  A chunk of a fresh private anonymous target goes
 * through a userfaultfd registered for missing pages: windows of WIN_PAGES
 * are read into a per-thread staging buffer and installed with UFFDIO_COPY
 * (zero runs with UFFDIO_ZEROPAGE), one system call per run rather than a
 * page fault per page.  Other targets are written in place.
 *
 * Invariant: a page p of a target is only written at dst + p*4096 with
 * p < pages, and pages == region size / 4096 was checked first.
 */
#include "bgsnap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "restore_int.h"
#include "uffd_sys.h"

#define CHUNK_PAGES 1024u   /* 4 MiB: unit of work between threads        */
#define WIN_PAGES   256u    /* 1 MiB: staging window (one ioctl per run)   */
#define MAX_THREADS 16u

typedef unsigned long long ull;

/* ------------------------------------------------------------------------ */
/* Shared helpers.                                                          */

int rst_check_targets(bgsnap_reader *r, const struct bgsnap_restore_target *t, unsigned n,
                      struct rst_target **out, struct bgsnap_err *err)
{
	*out = NULL;
	if (!n || !t)
		return err_set(err, -EINVAL, "no restore targets");
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi);
	if (fi.page_size != RST_PAGE)
		return err_set(err, -EINVAL, "page size %u not supported", fi.page_size);
	struct rst_target *v = calloc(n, sizeof(*v));
	if (!v)
		return err_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		struct bgsnap_region_info ri;
		int rc = -EINVAL;
		if (bgsnap_reader_region(r, t[i].region, &ri) < 0) {
			err_set(err, -EINVAL, "target %u: region %u does not exist (the snapshot has %u)", i,
			        t[i].region, fi.region_count);
			goto fail;
		}
		uintptr_t a = (uintptr_t)t[i].dst;
		if (!t[i].dst || a % RST_PAGE || t[i].len % RST_PAGE || t[i].len == 0 || a + t[i].len < a) {
			err_set(err, -EINVAL, "target %u (region '%s'): destination %p + %zu is not page-aligned, "
			        "empty or wrapping", i, ri.name, t[i].dst, t[i].len);
			goto fail;
		}
		if ((uint64_t)t[i].len != ri.size) {
			err_set(err, -EINVAL, "target %u: region '%s' is %llu bytes, the destination %zu", i, ri.name,
			        (ull)ri.size, t[i].len);
			goto fail;
		}
		for (unsigned j = 0; j < i; j++) {
			uintptr_t b = (uintptr_t)t[j].dst;
			if (a < b + t[j].len && b < a + t[i].len) {
				err_set(err, -EINVAL, "targets %u and %u overlap", j, i);
				goto fail;
			}
		}
		v[i].region = t[i].region;
		v[i].dst = t[i].dst;
		v[i].pages = ri.size / RST_PAGE;
		continue;
	fail:
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int rst_private_anon(const void *dst, uint64_t len, struct bgsnap_err *err)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return err_sys(err, -errno, "cannot read /proc/self/maps");
	uint64_t start = (uint64_t)(uintptr_t)dst, end = start + len, covered = start;
	char line[4096 + 256];
	int anon = 1;
	while (covered < end && fgets(line, sizeof(line), f)) {
		uint64_t lo, hi;
		char perms[8];
		int path_off = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &lo, &hi, perms, &path_off) < 3)
			continue;
		if (hi <= covered || lo >= end)
			continue;
		if (lo > covered)
			break;
		char *path = line + path_off;
		path[strcspn(path, "\n")] = '\0';
		if (perms[0] != 'r' || perms[1] != 'w') {
			fclose(f);
			return err_set(err, -EFAULT, "memory at 0x%llx is mapped '%s', not read-write", (ull)lo, perms);
		}
		/* [heap], [stack], [anon:name] are anonymous; any path is not. */
		if (perms[3] != 'p' || (path[0] && path[0] != '[') || !strcmp(path, "[vdso]"))
			anon = 0;
		covered = hi;
	}
	fclose(f);
	if (covered < end)
		return err_set(err, -EFAULT, "0x%llx is not mapped (destination 0x%llx+0x%llx)", (ull)covered,
		               (ull)start, (ull)len);
	return anon;
}

int64_t rst_populated(const void *dst, uint64_t pages, uint64_t *first, struct bgsnap_err *err)
{
	unsigned char vec[4096];
	int64_t count = 0;
	*first = pages;
	for (uint64_t p = 0; p < pages; p += sizeof(vec)) {
		uint64_t k = pages - p < sizeof(vec) ? pages - p : sizeof(vec);
		if (mincore((uint8_t *)dst + p * RST_PAGE, k * RST_PAGE, vec) < 0)
			return err_sys(err, -errno, "mincore at %p", (void *)((uint8_t *)dst + p * RST_PAGE));
		for (uint64_t i = 0; i < k; i++)
			if (vec[i] & 1) {
				if (!count)
					*first = p + i;
				count++;
			}
	}
	return count;
}

int rst_page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	uint64_t acc = 0;
	for (unsigned i = 0; i < RST_PAGE / 8; i += 8)
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
	return acc == 0;
}

int rst_fill(bgsnap_reader *r, unsigned region, uint64_t first, uint64_t count, uint8_t *buf,
             uint64_t *bad, struct bgsnap_err *err)
{
	for (uint64_t i = 0; i < count; i++) {
		int rc = bgsnap_reader_read_page(r, region, first + i, buf + i * RST_PAGE);
		if (rc < 0) {
			*bad = first + i;
			const char *m = bgsnap_reader_errmsg(r);
			return err_set(err, rc, "region %u page %llu: %s", region, (ull)(first + i),
			               m && *m ? m : strerror(-rc));
		}
	}
	return 0;
}

/* One UFFDIO_COPY or UFFDIO_ZEROPAGE over [dst, dst+len); returns the bytes
 * installed before it stopped (all of len on success) and sets *e to 0,
 * EEXIST (the page at dst+returned exists), or another errno. */
static uint64_t uffd_fill(int uffd, uint8_t *dst, const uint8_t *src, uint64_t len, int *e)
{
	for (int tries = 0;; tries++) {
		int rc;
		int64_t done;
		if (src) {
			struct uffdio_copy c = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len, .mode = 0 };
			rc = ioctl(uffd, UFFDIO_COPY, &c);
			done = c.copy;
		} else {
			struct uffdio_zeropage z = { .range = { (uintptr_t)dst, len }, .mode = 0 };
			rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
			done = z.zeropage;
		}
		if (rc == 0) {
			*e = 0;
			return len;
		}
		int en = errno;
		/* A partial success reports the bytes done; the rest is retried
		 * by the caller from there. */
		if (done > 0 && (uint64_t)done < len) {
			*e = EAGAIN;
			return (uint64_t)done;
		}
		if ((en == EAGAIN || en == EINTR) && tries < 1000)
			continue;
		*e = en;
		return 0;
	}
}

static void uffd_wake(int uffd, uint8_t *dst, uint64_t len)
{
	struct uffdio_range w = { (uintptr_t)dst, len };
	(void)ioctl(uffd, UFFDIO_WAKE, &w);
}

int rst_install(int uffd, uint8_t *dst, const uint8_t *buf, uint64_t count, int overwrite,
                struct rst_counts *c, struct bgsnap_err *err)
{
	uint64_t i = 0;
	int z = count ? rst_page_zero(buf) : 0;
	while (i < count) {
		/* [i, j) is a run of pages that are all zero or all not; zj is
		 * the kind of page j, so each page is scanned once. */
		uint64_t j = i + 1;
		int zj = 0;
		while (j < count && (zj = rst_page_zero(buf + j * RST_PAGE)) == z)
			j++;
		while (i < j) {
			int e;
			uint64_t len = (j - i) * RST_PAGE;
			uint64_t done = uffd_fill(uffd, dst + i * RST_PAGE, z ? NULL : buf + i * RST_PAGE, len, &e);
			uint64_t pg = done / RST_PAGE;
			if (z)
				c->zeroed += pg;
			else
				c->copied += pg;
			i += pg;
			if (e == 0 || e == EAGAIN)
				continue;
			if (e == EEXIST) {
				/* Already there: served by another thread, or populated
				 * by the owner.  Make sure no waiter is left asleep. */
				if (overwrite)
					memcpy(dst + i * RST_PAGE, buf + i * RST_PAGE, RST_PAGE);
				else
					uffd_wake(uffd, dst + i * RST_PAGE, RST_PAGE);
				c->existed++;
				i++;
				continue;
			}
			return err_set(err, -e, "installing %llu pages at %p: %s", (ull)(j - i),
			               (void *)(dst + i * RST_PAGE), strerror(e));
		}
		z = zj;
	}
	return 0;
}

int64_t rst_poison(int uffd, uint8_t *dst, uint64_t count, int poison, struct bgsnap_err *err)
{
	unsigned char vec[512];
	int64_t total = 0;
	for (uint64_t p = 0; p < count; p += sizeof(vec)) {
		uint64_t k = count - p < sizeof(vec) ? count - p : sizeof(vec);
		if (mincore(dst + p * RST_PAGE, k * RST_PAGE, vec) < 0)
			return err_sys(err, -errno, "mincore at %p", (void *)(dst + p * RST_PAGE));
		for (uint64_t i = 0; i < k;) {
			if (vec[i] & 1) {
				i++;
				continue;
			}
			uint64_t j = i + 1;
			while (j < k && !(vec[j] & 1))
				j++;
			uint8_t *a = dst + (p + i) * RST_PAGE;
			uint64_t len = (j - i) * RST_PAGE;
			if (poison) {
				uint64_t off = 0;
				while (off < len) {
					struct uffdio_poison q = { .range = { (uintptr_t)a + off, len - off }, .mode = 0 };
					if (ioctl(uffd, UFFDIO_POISON, &q) == 0) {
						total += (int64_t)((len - off) / RST_PAGE);
						break;
					}
					int e = errno;
					if (q.updated > 0) {
						off += (uint64_t)q.updated;
						total += q.updated / RST_PAGE;
					} else if (e == EEXIST) {
						off += RST_PAGE;   /* filled meanwhile: fine */
					} else if (e != EAGAIN && e != EINTR) {
						return err_sys(err, -e, "UFFDIO_POISON at %p", (void *)(a + off));
					}
				}
			} else {
				if (mprotect(a, len, PROT_NONE) < 0)
					return err_sys(err, -errno, "mprotect(PROT_NONE) at %p", (void *)a);
				uffd_wake(uffd, a, len);
				total += (int64_t)(j - i);
			}
			i = j;
		}
	}
	return total;
}

/* ------------------------------------------------------------------------ */
/* Eager restore.                                                           */

struct eager {
	const char *path;
	struct rst_target *t;
	unsigned n;
	uint64_t *chunk_base;     /* first chunk number of each target       */
	uint64_t nchunks;
	int uffd;
	_Atomic uint64_t next;
	atomic_int failed;
	pthread_mutex_t mu;
	struct bgsnap_err err;
	bgsnap_reader *r0;        /* opened first; worker 0 reads with it    */
};

static void eager_fail(struct eager *g, const struct bgsnap_err *e)
{
	pthread_mutex_lock(&g->mu);
	if (!g->err.code)
		g->err = *e;
	pthread_mutex_unlock(&g->mu);
	atomic_store(&g->failed, 1);
}

static int eager_chunk(struct eager *g, bgsnap_reader *r, uint8_t *stage, uint64_t c, struct bgsnap_err *e)
{
	unsigned ti = 0;
	while (ti + 1 < g->n && g->chunk_base[ti + 1] <= c)
		ti++;
	const struct rst_target *t = &g->t[ti];
	uint64_t first = (c - g->chunk_base[ti]) * CHUNK_PAGES;
	uint64_t end = first + CHUNK_PAGES < t->pages ? first + CHUNK_PAGES : t->pages;
	if (!t->uffd_ok) {
		/* In place: populate the chunk in one call (a fault per page costs
		 * tens of microseconds on a VM), then read into it. */
		(void)madvise(t->dst + first * RST_PAGE, (end - first) * RST_PAGE, MADV_POPULATE_WRITE);
		uint64_t bad;
		return rst_fill(r, t->region, first, end - first, t->dst + first * RST_PAGE, &bad, e);
	}
	for (uint64_t p = first; p < end; p += WIN_PAGES) {
		uint64_t k = end - p < WIN_PAGES ? end - p : WIN_PAGES, bad;
		int rc = rst_fill(r, t->region, p, k, stage, &bad, e);
		struct rst_counts cnt = { 0, 0, 0 };
		if (rc == 0)
			rc = rst_install(g->uffd, t->dst + p * RST_PAGE, stage, k, 1, &cnt, e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

struct eager_arg {
	struct eager *g;
	bgsnap_reader *r;          /* NULL: open one */
};

static void *eager_worker(void *arg)
{
	struct eager_arg *a = arg;
	struct eager *g = a->g;
	struct bgsnap_err e = { 0, "" };
	bgsnap_reader *r = a->r;
	uint8_t *stage = NULL;
	if (!r) {
		char m[sizeof(e.msg)];
		int rc = bgsnap_reader_open(&r, g->path, m, sizeof(m));
		if (rc < 0) {
			err_set(&e, rc, "%s", m);
			eager_fail(g, &e);
			return NULL;
		}
	}
	stage = aligned_alloc(RST_PAGE, (size_t)WIN_PAGES * RST_PAGE);
	if (!stage) {
		err_set(&e, -ENOMEM, "out of memory");
		eager_fail(g, &e);
	}
	while (stage && !atomic_load(&g->failed)) {
		uint64_t c = atomic_fetch_add(&g->next, 1);
		if (c >= g->nchunks)
			break;
		if (eager_chunk(g, r, stage, c, &e) < 0) {
			eager_fail(g, &e);
			break;
		}
	}
	free(stage);
	if (r != a->r)
		bgsnap_reader_close(r);
	return NULL;
}

static unsigned pick_threads(unsigned threads, uint64_t nchunks)
{
	if (!threads) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		threads = c > 0 ? (unsigned)c : 1;
	}
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (threads > nchunks)
		threads = (unsigned)nchunks;
	return threads ? threads : 1;
}

/* Registers fresh private anonymous targets for missing faults; others are
 * written in place.  No userfaultfd here is not an error. */
static void eager_register(struct eager *g)
{
	struct bgsnap_err e = { 0, "" };
	uint64_t granted;
	int fresh = 0;
	for (unsigned i = 0; i < g->n; i++) {
		uint64_t first;
		struct rst_target *t = &g->t[i];
		t->uffd_ok = rst_private_anon(t->dst, t->pages * RST_PAGE, &e) == 1 &&
		             rst_populated(t->dst, t->pages, &first, &e) == 0;
		fresh += t->uffd_ok;
	}
	if (!fresh)
		return;
	g->uffd = uffd_open(0, 0, &granted, &e);
	for (unsigned i = 0; i < g->n; i++) {
		struct rst_target *t = &g->t[i];
		if (!t->uffd_ok)
			continue;
		struct uffdio_register reg = { .range = { (uintptr_t)t->dst, t->pages * RST_PAGE },
		                               .mode = UFFDIO_REGISTER_MODE_MISSING };
		uint64_t need = (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE);
		if (g->uffd < 0 || ioctl(g->uffd, UFFDIO_REGISTER, &reg) < 0) {
			t->uffd_ok = 0;
		} else if ((reg.ioctls & need) != need) {
			struct uffdio_range u = reg.range;
			(void)ioctl(g->uffd, UFFDIO_UNREGISTER, &u);
			t->uffd_ok = 0;
		}
	}
}

static void eager_unregister(struct eager *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		if (!g->t[i].uffd_ok)
			continue;
		struct uffdio_range u = { (uintptr_t)g->t[i].dst, g->t[i].pages * RST_PAGE };
		(void)ioctl(g->uffd, UFFDIO_UNREGISTER, &u);
	}
	if (g->uffd >= 0)
		close(g->uffd);
	g->uffd = -1;
}

static int fail_out(char *err, size_t err_len, const struct bgsnap_err *e, int rc)
{
	if (err && err_len)
		snprintf(err, err_len, "%s", e->msg[0] ? e->msg : strerror(-rc));
	return rc;
}

int bgsnap_restore(const char *path, const struct bgsnap_restore_target *targets, unsigned n,
                   unsigned threads, char *err, size_t err_len)
{
	struct eager g;
	memset(&g, 0, sizeof(g));
	g.uffd = -1;
	g.path = path;
	g.n = n;
	pthread_mutex_init(&g.mu, NULL);
	if (err && err_len)
		err[0] = '\0';
	char m[sizeof(g.err.msg)];
	int rc = bgsnap_reader_open(&g.r0, path, m, sizeof(m));
	if (rc < 0) {
		err_set(&g.err, rc, "%s", m);
		goto out;
	}
	if ((rc = rst_check_targets(g.r0, targets, n, &g.t, &g.err)) < 0)
		goto out;
	if (!(g.chunk_base = calloc(n, sizeof(*g.chunk_base)))) {
		rc = err_set(&g.err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		g.chunk_base[i] = g.nchunks;
		g.nchunks += (g.t[i].pages + CHUNK_PAGES - 1) / CHUNK_PAGES;
	}
	eager_register(&g);
	threads = pick_threads(threads, g.nchunks);
	pthread_t th[MAX_THREADS];
	struct eager_arg args[MAX_THREADS];
	unsigned started = 0;
	for (unsigned i = 1; i < threads; i++) {
		args[i] = (struct eager_arg){ &g, NULL };
		if (pthread_create(&th[started], NULL, eager_worker, &args[i]) != 0)
			break;   /* fewer threads: the others take more chunks */
		started++;
	}
	/* This thread is worker 0, on the reader already open. */
	args[0] = (struct eager_arg){ &g, g.r0 };
	eager_worker(&args[0]);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	eager_unregister(&g);
	rc = g.err.code;
out:
	if (g.uffd >= 0)
		close(g.uffd);
	bgsnap_reader_close(g.r0);
	free(g.t);
	free(g.chunk_base);
	pthread_mutex_destroy(&g.mu);
	return rc < 0 ? fail_out(err, err_len, &g.err, rc) : 0;
}
