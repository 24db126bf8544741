/*
 * restore.c - eager restore (bgsnap_restore) and the helpers it shares with
 * lazy restore (restore_int.h).
 *
 * Eager: the index's page records, in file order, are cut into slices of a
 * few MiB of consecutive records that the worker threads take from a shared
 * counter.  STATE (and PAD) records are in no slice and never read: a worker's buffer
 * is bounded by the slice size (or one large PAGES record), not by the
 * largest state blob, of which each of up to MAX_THREADS would hold a copy.
 * A worker reads its slice with one preadv (records are contiguous): PAGES
 * data of targets filled in place lands straight in the target, the rest
 * in its buffer (restore_direct.c).  The reader then checks each record
 * against its index entry and its checksum (reader_run_check: the one
 * parser).  A fresh private anonymous target the kernel may back with huge
 * pages is populated in 2 MiB steps and read in place; other fresh ones are
 * registered with a userfaultfd for missing pages and filled with
 * UFFDIO_COPY from the buffer (the kernel allocates and fills each page in
 * one step instead of a first-touch fault per 4 KiB page); in fresh targets
 * ZERO records cost nothing (missing pages read as zero).  Other targets
 * are read in place, their zero runs written.
 *
 * Lazy restore (restore_lazy.c) prefetches the same way and serves faults
 * through bgsnap_reader_read_page.
 *
 * Invariant: a page p of a target is only written at dst + p * PAGE_SIZE_ with
 * p < pages: the reader checked every run against its region's size at open,
 * and each target was checked to be exactly its region's size first.
 */
#include "bgsnap.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/err.h"
#include "format/format.h"
#include "format/reader.h"
#include "restore/restore_int.h"
#include "os/proc_maps.h"
#include "os/uffd_sys.h"
#include "util/thread.h"

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
	bgsnap_reader_info(r, &fi, sizeof fi);
	if (fi.page_size != PAGE_SIZE_)
		return err_set(err, -EINVAL, "page size %u not supported", fi.page_size);
	struct rst_target *v = calloc(n, sizeof(*v));
	if (!v)
		return err_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		struct bgsnap_region_info ri;
		int rc = -EINVAL;
		if (bgsnap_reader_region(r, t[i].region, &ri, sizeof ri) < 0) {
			err_set(err, -EINVAL, "target %u: region %u does not exist (the snapshot has %u)", i,
			        t[i].region, fi.region_count);
			goto fail;
		}
		uintptr_t a = (uintptr_t)t[i].dst;
		if (!t[i].dst || a % PAGE_SIZE_ || t[i].len % PAGE_SIZE_ || t[i].len == 0 || a + t[i].len < a) {
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
			if (t[j].region == t[i].region) {
				err_set(err, -EINVAL, "targets %u and %u are both region '%s'", j, i, ri.name);
				goto fail;
			}
		}
		v[i].region = t[i].region;
		v[i].dst = t[i].dst;
		v[i].pages = ri.size / PAGE_SIZE_;
		continue;
	fail:
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

struct anon_ctx {
	int anon;
	struct bgsnap_err *err;
};

static int anon_one(const struct maps_entry *m, void *arg)
{
	struct anon_ctx *c = arg;
	if (m->perms[0] != 'r' || m->perms[1] != 'w')
		return err_set(c->err, -EFAULT, "memory at 0x%llx is mapped '%s', not read-write", (ull)m->lo,
		               m->perms);
	/* [heap], [stack], [anon:name] are anonymous; any path is not. */
	if (m->perms[3] != 'p' || (m->path[0] && m->path[0] != '[') || !strcmp(m->path, "[vdso]"))
		c->anon = 0;
	return 0;
}

int rst_private_anon(const void *dst, uint64_t len, struct bgsnap_err *err)
{
	struct anon_ctx c = { 1, err };
	int r = maps_walk(dst, len, anon_one, &c, err);
	return r ? r : c.anon;
}

int64_t rst_populated(const void *dst, uint64_t pages, uint64_t *first, struct bgsnap_err *err)
{
	unsigned char vec[4096];
	int64_t count = 0;
	*first = pages;
	for (uint64_t p = 0; p < pages; p += sizeof(vec)) {
		uint64_t k = pages - p < sizeof(vec) ? pages - p : sizeof(vec);
		if (mincore((uint8_t *)dst + p * PAGE_SIZE_, k * PAGE_SIZE_, vec) < 0)
			return err_sys(err, -errno, "mincore at %p", (void *)((uint8_t *)dst + p * PAGE_SIZE_));
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
	for (unsigned i = 0; i < PAGE_SIZE_ / 8; i += 8)
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
	return acc == 0;
}

int rst_fill(bgsnap_reader *r, unsigned region, uint64_t first, uint64_t count, uint8_t *buf,
             uint64_t *bad, struct bgsnap_err *err)
{
	for (uint64_t i = 0; i < count; i++) {
		int rc = bgsnap_reader_read_page(r, region, first + i, buf + i * PAGE_SIZE_);
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
		while (j < count && (zj = rst_page_zero(buf + j * PAGE_SIZE_)) == z)
			j++;
		while (i < j) {
			int e;
			uint64_t len = (j - i) * PAGE_SIZE_;
			uint64_t done = uffd_fill(uffd, dst + i * PAGE_SIZE_, z ? NULL : buf + i * PAGE_SIZE_, len, &e);
			uint64_t pg = done / PAGE_SIZE_;
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
					memcpy(dst + i * PAGE_SIZE_, buf + i * PAGE_SIZE_, PAGE_SIZE_);
				else
					uffd_wake(uffd, dst + i * PAGE_SIZE_, PAGE_SIZE_);
				c->existed++;
				i++;
				continue;
			}
			return err_set(err, -e, "installing %llu pages at %p: %s", (ull)(j - i),
			               (void *)(dst + i * PAGE_SIZE_), strerror(e));
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
		if (mincore(dst + p * PAGE_SIZE_, k * PAGE_SIZE_, vec) < 0)
			return err_sys(err, -errno, "mincore at %p", (void *)(dst + p * PAGE_SIZE_));
		for (uint64_t i = 0; i < k;) {
			if (vec[i] & 1) {
				i++;
				continue;
			}
			uint64_t j = i + 1;
			while (j < k && !(vec[j] & 1))
				j++;
			uint8_t *a = dst + (p + i) * PAGE_SIZE_;
			uint64_t len = (j - i) * PAGE_SIZE_;
			if (poison) {
				uint64_t off = 0;
				while (off < len) {
					struct uffdio_poison q = { .range = { (uintptr_t)a + off, len - off }, .mode = 0 };
					if (ioctl(uffd, UFFDIO_POISON, &q) == 0) {
						total += (int64_t)((len - off) / PAGE_SIZE_);
						break;
					}
					int e = errno;
					if (q.updated > 0) {
						off += (uint64_t)q.updated;
						total += q.updated / PAGE_SIZE_;
					} else if (e == EEXIST) {
						off += PAGE_SIZE_;   /* filled meanwhile: fine */
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
	bgsnap_reader *r;
	int fd;
	struct rst_target *t;
	unsigned n;
	int *target_of;           /* region -> target index, -1 if none     */
	struct rst_slice *slice;  /* page records, in file order            */
	size_t nslices;
	uint64_t buf_len;         /* per-thread buffer: largest slice (page
	                             records only, so bounded by the slice
	                             size or the largest PAGES record)      */
	size_t max_recs;          /* records in the largest slice           */
	unsigned threads;
	int uffd;
	_Atomic size_t next;
	atomic_int failed;
	pthread_mutex_t mu;
	struct bgsnap_err err;
};

static void eager_fail(struct eager *g, const struct bgsnap_err *e)
{
	pthread_mutex_lock(&g->mu);
	if (!g->err.code)
		g->err = *e;
	pthread_mutex_unlock(&g->mu);
	atomic_store(&g->failed, 1);
}

int rst_fill_run(int uffd, uint8_t *dst, const uint8_t *src, uint64_t count, int overwrite, struct rst_counts *c,
                 struct bgsnap_err *err)
{
	uint64_t i = 0;
	while (i < count) {
		int e;
		uint64_t done = uffd_fill(uffd, dst + i * PAGE_SIZE_, src ? src + i * PAGE_SIZE_ : NULL,
		                          (count - i) * PAGE_SIZE_, &e);
		if (src)
			c->copied += done / PAGE_SIZE_;
		else
			c->zeroed += done / PAGE_SIZE_;
		i += done / PAGE_SIZE_;
		if (e == 0 || e == EAGAIN)
			continue;
		if (e == EEXIST) {
			if (!overwrite)
				uffd_wake(uffd, dst + i * PAGE_SIZE_, PAGE_SIZE_);
			else if (src)
				memcpy(dst + i * PAGE_SIZE_, src + i * PAGE_SIZE_, PAGE_SIZE_);
			else
				memset(dst + i * PAGE_SIZE_, 0, PAGE_SIZE_);
			c->existed++;
			i++;
			continue;
		}
		return err_set(err, -e, "%s of %llu pages at %p: %s", src ? "UFFDIO_COPY" : "UFFDIO_ZEROPAGE",
		               (ull)(count - i), (void *)(dst + i * PAGE_SIZE_), strerror(e));
	}
	return 0;
}

/* What one worker owns: the slice buffer (record heads, checksums, ZERO
 * and CPAGES records; PAGES data goes straight to the targets), where each
 * record of a slice goes, the preadv list, a CPAGES decoder. */
struct worker {
	uint8_t *buf;
	uint8_t **dst;
	struct iovec *iov;
	struct reader_dec *dec;
};

/* 1 when all of x's pages are in the image (always for a lone file; in a
 * chain, unless a newer link holds some of them). */
static int run_whole(const bgsnap_reader *r, const struct reader_run *x)
{
	uint64_t from = 0, pf, pc;
	return reader_run_piece(r, x, &from, &pf, &pc) && pf == x->first && pc == x->count;
}

/* Where each record of slice [a, b) goes: page data of PAGES records of
 * direct targets, wholly in the image, into the target (populated first
 * when THP), the rest into the buffer.  A record only partly in the image
 * goes through the buffer: its other pages belong to a newer link, which
 * another thread may be writing. */
static void eager_plan(struct eager *g, struct worker *w, size_t a, size_t b)
{
	struct rst_pop p = { NULL, 0, 0 };
	for (size_t i = a; i < b; i++) {
		struct reader_run x;
		reader_run_get(g->r, i, &x);
		w->dst[i - a] = NULL;
		if (x.kind == FMT_REC_STATE || g->target_of[x.region] < 0)
			continue;
		struct rst_target *t = &g->t[g->target_of[x.region]];
		if (t->thp && x.kind != FMT_REC_ZERO)
			rst_pop_add(&p, t, x.first, x.count);
		/* The reader checked first + count <= the region's pages at
		 * open, and the target is exactly the region's size. */
		if (t->direct && x.kind == FMT_REC_PAGES && run_whole(g->r, &x))
			w->dst[i - a] = t->dst + x.first * PAGE_SIZE_;
	}
	rst_pop_add(&p, NULL, 0, 0);
}

/* One piece of a record: pages [first, first+count) from src (NULL: zero). */
static int eager_piece(struct eager *g, const struct rst_target *t, uint64_t first, uint64_t count,
                       const uint8_t *src, struct bgsnap_err *e)
{
	uint8_t *dst = t->dst + first * PAGE_SIZE_;
	if (src && t->uffd_ok) {
		struct rst_counts c = { 0, 0, 0 };
		return rst_fill_run(g->uffd, dst, src, count, 1, &c, e);
	}
	if (src)
		memcpy(dst, src, (size_t)(count * PAGE_SIZE_));
	else if (!t->fresh)
		memset(dst, 0, (size_t)(count * PAGE_SIZE_));
	/* A fresh target's missing pages already read as zero. */
	return 0;
}

/* One record of a slice, read: checked against its index entry and its
 * checksum, then its pages in the image installed unless they were read
 * in place. */
static int eager_record(struct eager *g, struct worker *w, size_t i, uint8_t *rec, uint8_t *direct,
                        struct bgsnap_err *e)
{
	struct reader_run x;
	reader_run_get(g->r, i, &x);
	const struct rst_target *t = &g->t[g->target_of[x.region]];
	if (direct)
		return reader_run_check_split(g->r, i, rec, direct, e);
	if (x.kind == FMT_REC_CPAGES && t->direct && run_whole(g->r, &x))
		return reader_run_decode_to(g->r, i, rec, &w->dec, t->dst + x.first * PAGE_SIZE_, e);
	const uint8_t *src;
	int rc = reader_run_pages(g->r, i, rec, &w->dec, &src, e);
	uint64_t from = 0, pf, pc;
	while (rc == 0 && reader_run_piece(g->r, &x, &from, &pf, &pc))
		rc = eager_piece(g, t, pf, pc, src ? src + (pf - x.first) * PAGE_SIZE_ : NULL, e);
	return rc;
}

/* One slice: read with preadv (page data straight into direct targets),
 * then each record checked before the slice counts as restored.  Pages
 * read in place are in the target before their checksum is checked: a
 * failed restore leaves the targets unspecified (bgsnap.h). */
static int eager_slice(struct eager *g, struct worker *w, size_t s, struct bgsnap_err *e)
{
	size_t a = g->slice[s].first, b = g->slice[s].end;
	struct reader_run x;
	reader_run_get(g->r, a, &x);
	uint64_t base = x.offset;
	eager_plan(g, w, a, b);
	int rc = rst_read_direct(x.fd, g->r, a, b, w->buf, w->dst, w->iov, e);
	for (size_t i = a; rc == 0 && i < b; i++) {
		reader_run_get(g->r, i, &x);
		if (x.kind != FMT_REC_STATE && g->target_of[x.region] >= 0)
			rc = eager_record(g, w, i, w->buf + (x.offset - base), w->dst[i - a], e);
	}
	return rc;
}

/* Asks the kernel to start reading slice s (the one after those being
 * read): with the file not cached, the disk works while threads install. */
static void eager_readahead(struct eager *g, size_t s)
{
	if (s >= g->nslices)
		return;
	struct reader_run x, y;
	reader_run_get(g->r, g->slice[s].first, &x);
	reader_run_get(g->r, g->slice[s].end - 1, &y);
	(void)posix_fadvise(x.fd, (off_t)x.offset, (off_t)(y.offset + y.span - x.offset), POSIX_FADV_WILLNEED);
}

static void *eager_worker(void *arg)
{
	struct eager *g = arg;
	struct bgsnap_err e = { 0, "" };
	struct worker w = { malloc((size_t)g->buf_len), calloc(g->max_recs, sizeof(*w.dst)),
	                    calloc(3 * g->max_recs, sizeof(*w.iov)), NULL };
	if (!w.buf || !w.dst || !w.iov) {
		err_set(&e, -ENOMEM, "out of memory (%llu bytes)", (ull)g->buf_len);
		eager_fail(g, &e);
		goto out;
	}
	while (!atomic_load(&g->failed)) {
		size_t s = atomic_fetch_add(&g->next, 1);
		if (s >= g->nslices)
			break;
		eager_readahead(g, s + g->threads);
		if (eager_slice(g, &w, s, &e) < 0) {
			eager_fail(g, &e);
			break;
		}
	}
out:
	reader_dec_free(w.dec);
	free(w.iov);
	free(w.dst);
	free(w.buf);
	return NULL;
}

int rst_slices(const bgsnap_reader *r, struct rst_slice **slices, size_t *nslices, uint64_t *buf_len,
               struct bgsnap_err *err)
{
	size_t n = reader_run_count(r), ns = 0;
	/* At most one slice per page record. */
	struct rst_slice *sl = malloc((n ? n : 1) * sizeof(*sl));
	if (!sl)
		return err_set(err, -ENOMEM, "out of memory");
	uint64_t start = 0, end = 0, len = 1;
	int in_slice = 0;
	uint32_t link = 0;
	for (size_t i = 0; i < n; i++) {
		struct reader_run x;
		reader_run_get(r, i, &x);
		if (x.kind == FMT_REC_STATE || x.kind == FMT_REC_PAD) {
			in_slice = 0;   /* the next page record starts a slice */
			continue;
		}
		/* Index entries tile the file: a page record right after
		 * another (no STATE between) starts where it ends.  A chain's
		 * next file starts a slice. */
		if (!in_slice || x.link != link || x.offset + x.span - start > RST_SLICE_BYTES) {
			sl[ns++] = (struct rst_slice){ i, i };
			start = x.offset;
			in_slice = 1;
		}
		sl[ns - 1].end = i + 1;
		link = x.link;
		end = x.offset + x.span;
		if (end - start > len)
			len = end - start;
	}
	*slices = sl;
	*nslices = ns;
	*buf_len = len;
	return 0;
}

static unsigned pick_threads(unsigned threads, size_t nslices)
{
	if (!threads) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		threads = c > 0 ? (unsigned)c : 1;
	}
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (threads > nslices)
		threads = (unsigned)nslices;
	return threads ? threads : 1;
}

/* How each target is filled.  Fresh private anonymous memory: with 2 MiB
 * pages when THP-eligible (populated in bulk, read in place), else through
 * a userfaultfd registered for missing pages (UFFDIO_COPY: the kernel
 * allocates and fills each page through its own mapping, no first-touch
 * fault on the target).  Anything else, or no userfaultfd here: read in
 * place. */
static void eager_register(struct eager *g)
{
	struct bgsnap_err e = { 0, "" };
	uint64_t granted;
	int want_uffd = 0;
	for (unsigned i = 0; i < g->n; i++) {
		uint64_t first;
		struct rst_target *t = &g->t[i];
		t->fresh = rst_private_anon(t->dst, t->pages * PAGE_SIZE_, &e) == 1 &&
		           rst_populated(t->dst, t->pages, &first, &e) == 0;
		t->thp = t->fresh && rst_thp_target(t->dst, t->pages * PAGE_SIZE_);
		t->uffd_ok = t->fresh && !t->thp;
		want_uffd += t->uffd_ok;
	}
	if (want_uffd)
		g->uffd = uffd_open(0, 0, &granted, &e);
	for (unsigned i = 0; i < g->n; i++) {
		struct rst_target *t = &g->t[i];
		if (t->uffd_ok) {
			struct uffdio_register reg = { .range = { (uintptr_t)t->dst, t->pages * PAGE_SIZE_ },
			                               .mode = UFFDIO_REGISTER_MODE_MISSING };
			uint64_t need = 1ull << _UFFDIO_COPY;
			if (g->uffd < 0 || ioctl(g->uffd, UFFDIO_REGISTER, &reg) < 0) {
				t->uffd_ok = 0;
			} else if ((reg.ioctls & need) != need) {
				struct uffdio_range u = reg.range;
				(void)ioctl(g->uffd, UFFDIO_UNREGISTER, &u);
				t->uffd_ok = 0;
			}
		}
		t->direct = !t->uffd_ok;
	}
}

static void eager_unregister(struct eager *g)
{
	for (unsigned i = 0; i < g->n; i++) {
		if (!g->t[i].uffd_ok)
			continue;
		struct uffdio_range u = { (uintptr_t)g->t[i].dst, g->t[i].pages * PAGE_SIZE_ };
		(void)ioctl(g->uffd, UFFDIO_UNREGISTER, &u);
	}
	if (g->uffd >= 0)
		close(g->uffd);
	g->uffd = -1;
}

int bgsnap_restore_reader(bgsnap_reader *r, const struct bgsnap_restore_target *targets, unsigned n,
                          unsigned threads, char *err, size_t err_len)
{
	struct eager g;
	memset(&g, 0, sizeof(g));
	g.uffd = -1;
	g.r = r;
	g.n = n;
	pthread_mutex_init(&g.mu, NULL);
	if (err && err_len)
		err[0] = '\0';
	int rc;
	struct bgsnap_file_info fi;
	if (!r) {
		rc = err_set(&g.err, -EINVAL, "no reader");
		goto out;
	}
	bgsnap_reader_info(r, &fi, sizeof fi);
	if (!fi.file_bytes || (g.fd = reader_fd(r)) < 0) {
		rc = err_set(&g.err, -ESPIPE, "restore needs a random-access reader (bgsnap_reader_open)");
		goto out;
	}
	if (reader_partial(r)) {
		rc = err_set(&g.err, -EINVAL, "%s is incremental, read without its chain: restore it through "
		             "bgsnap_reader_open or bgsnap_reader_open_chain", bgsnap_reader_path(r));
		goto out;
	}
	if ((rc = rst_check_targets(r, targets, n, &g.t, &g.err)) < 0)
		goto out;
	if (!(g.target_of = malloc(fi.region_count * sizeof(*g.target_of)))) {
		rc = err_set(&g.err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < fi.region_count; i++)
		g.target_of[i] = -1;
	for (unsigned i = 0; i < n; i++)
		g.target_of[g.t[i].region] = (int)i;
	if ((rc = rst_slices(r, &g.slice, &g.nslices, &g.buf_len, &g.err)) < 0)
		goto out;
	for (size_t s = 0; s < g.nslices; s++)
		if (g.slice[s].end - g.slice[s].first > g.max_recs)
			g.max_recs = g.slice[s].end - g.slice[s].first;
	eager_register(&g);
	threads = pick_threads(threads, g.nslices);
	g.threads = threads;
	pthread_t th[MAX_THREADS];
	unsigned started = 0;
	for (unsigned i = 1; i < threads; i++) {
		if (thread_start(&th[started], "bgsnap-restore", eager_worker, &g) != 0)
			break;   /* fewer threads: the others take more slices */
		started++;
	}
	eager_worker(&g);   /* this thread is a worker too */
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	eager_unregister(&g);
	rc = g.err.code;
	for (unsigned i = 0; rc == 0 && i < n; i++)
		if (rst_thp_target(g.t[i].dst, g.t[i].pages * PAGE_SIZE_))
			rst_thp_collapse(g.t[i].dst, g.t[i].pages * PAGE_SIZE_);
out:
	if (g.uffd >= 0)
		close(g.uffd);
	free(g.t);
	free(g.target_of);
	free(g.slice);
	pthread_mutex_destroy(&g.mu);
	if (rc < 0 && err && err_len)
		snprintf(err, err_len, "%s", g.err.msg[0] ? g.err.msg : strerror(-rc));
	return rc < 0 ? rc : 0;
}

int bgsnap_restore(const char *path, const struct bgsnap_restore_target *targets, unsigned n, unsigned threads,
                   char *err, size_t err_len)
{
	bgsnap_reader *r;
	char m[512];
	int rc = bgsnap_reader_open(&r, path, m, sizeof(m));
	if (rc < 0) {
		if (err && err_len)
			snprintf(err, err_len, "%s", m);
		return rc;
	}
	rc = bgsnap_restore_reader(r, targets, n, threads, err, err_len);
	bgsnap_reader_close(r);
	return rc;
}
