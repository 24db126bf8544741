/*
 * restore_map.c - restore by mapping (bgsnap_restore_map): a version 4
 * file's PAGES data start at multiples of the page size, so each record's
 * pages are mapped MAP_PRIVATE|MAP_FIXED from the file over their place in
 * the target instead of being copied; the rest of the target is fresh
 * anonymous memory, where ZERO runs cost nothing.  Eager restore by copy
 * into fresh memory pays the kernel's zeroing of each new page and a copy
 * from the page cache; a mapping shares the page cache page until the
 * first write to it.
 *
 * Checks before any mmap: the target was checked against its region
 * (rst_check_targets), and each PAGES record's data offset, length and
 * destination are checked again here against the alignment, the file size
 * and the target's page count, whatever the reader's open found: a mapping
 * never covers anything but its target's pages.
 *
 * Worker threads take records from a shared counter, the file read ahead
 * of them: they read the small records into place, and (unless the caller
 * opts out) read the mapped pages back, each record's head and checksum
 * pread beside them, and check them through the reader
 * (reader_run_check_parts: the one parser).
 */
#include "bgsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "format/format.h"
#include "format/reader.h"
#include "os/proc_maps.h"
#include "restore/restore_int.h"
#include "util/err.h"
#include "util/thread.h"

#define MAX_THREADS 16u
/* PAGES records of fewer pages are read into the target instead of being
 * mapped: each mapping costs a VMA of its own (two, as it splits the
 * anonymous one) and an mmap call, and the pages copied on write faults
 * are records of one page each, thousands of them in a snapshot taken
 * under writes; measured on 64 MiB under uffd, mapping them made the
 * restore 10x slower than mapping the sweep's 256-page records alone. */
#define MAP_MIN_PAGES 16u
/* Records verified ahead of the one being read, per thread: the file is
 * read from disk while the threads checksum what is in. */
#define AHEAD_RECORDS 4u

typedef unsigned long long ull;

struct mapper {
	bgsnap_reader *r;
	int fd;
	uint64_t file_bytes;
	struct rst_target *t;
	unsigned n;
	int *target_of;           /* region -> target index, -1 if none */
	size_t *recs;             /* PAGES/ZERO entries of mapped targets, file order */
	size_t nrecs;
	unsigned threads;
	int no_verify;            /* the workers only read the small records */
	_Atomic size_t next;
	atomic_int failed;
	pthread_mutex_t mu;
	struct bgsnap_err err;
};

static void map_fail(struct mapper *m, const struct bgsnap_err *e)
{
	pthread_mutex_lock(&m->mu);
	if (!m->err.code)
		m->err = *e;
	pthread_mutex_unlock(&m->mu);
	atomic_store(&m->failed, 1);
}

/* A target whose mapping may be replaced: private (a shared one is seen
 * by others, who would keep the old memory) and read-write. */
static int private_one(const struct maps_entry *me, void *arg)
{
	int *ok = arg;
	if (me->perms[0] != 'r' || me->perms[1] != 'w' || me->perms[3] != 'p')
		*ok = 0;
	return 0;
}

/* VMAs the process has and may have (vm.max_map_count). */
static int count_one(const struct maps_entry *me, void *arg)
{
	(void)me;
	(*(uint64_t *)arg)++;
	return 0;
}

/* 0 when the mappings cannot be counted: every target is then restored by
 * copy, which is no failure of the restore (the error stays here). */
static uint64_t map_budget(void)
{
	struct bgsnap_err we = { 0, "" };
	uint64_t have = 0, max = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	if (f) {
		unsigned long long v;
		if (fscanf(f, "%llu", &v) == 1)
			max = v;
		fclose(f);
	}
	if (maps_walk_all(count_one, &have, &we) < 0)
		return 0;
	/* Half of what is left: the host needs mappings of its own later. */
	return have < max ? (max - have) / 2 : 0;
}

/* Which targets can be mapped: map[i] = 1.  A region's records are all
 * PAGES or ZERO, the target is private, and the mappings fit the budget
 * (each PAGES record may split the anonymous mapping into two more). */
static int plan(struct mapper *m, int *map, struct bgsnap_err *e)
{
	size_t n = reader_run_count(m->r);
	uint64_t *vmas = calloc(m->n, sizeof(*vmas));
	int *raw = malloc(m->n * sizeof(*raw));
	if (!vmas || !raw) {
		free(vmas);
		free(raw);
		return err_set(e, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < m->n; i++) {
		raw[i] = reader_map_layout(m->r);
		vmas[i] = 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct reader_run x;
		reader_run_get(m->r, i, &x);
		if (x.kind == FMT_REC_STATE || x.kind == FMT_REC_PAD || m->target_of[x.region] < 0)
			continue;
		int ti = m->target_of[x.region];
		if (x.kind == FMT_REC_CPAGES)
			raw[ti] = 0;
		else if (x.kind == FMT_REC_PAGES && x.count >= MAP_MIN_PAGES)
			vmas[ti] += 2;
	}
	uint64_t budget = map_budget();
	for (unsigned i = 0; i < m->n; i++) {
		int priv = 1;
		struct bgsnap_err we = { 0, "" };
		int rc = maps_walk(m->t[i].dst, m->t[i].pages * PAGE_SIZE_, private_one, &priv, &we);
		if (rc < 0) {
			free(vmas);
			free(raw);
			*e = we;
			return rc;
		}
		map[i] = raw[i] && priv && vmas[i] <= budget;
		if (map[i])
			budget -= vmas[i];
	}
	free(vmas);
	free(raw);
	return 0;
}

/* Maps target i: anonymous zero memory over all of it, then each PAGES
 * record's data from the file; collects the records to verify. */
static int map_target(struct mapper *m, unsigned ti, struct bgsnap_err *e)
{
	struct rst_target *t = &m->t[ti];
	uint64_t len = t->pages * PAGE_SIZE_;
	if (mmap(t->dst, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		return err_sys(e, -errno, "mmap of anonymous memory over the target at %p (%llu bytes)", (void *)t->dst,
		               (ull)len);
	size_t n = reader_run_count(m->r);
	uint64_t data = reader_run_data_offset();
	for (size_t i = 0; i < n; i++) {
		struct reader_run x;
		reader_run_get(m->r, i, &x);
		if ((x.kind != FMT_REC_PAGES && x.kind != FMT_REC_ZERO) || x.region != t->region)
			continue;
		m->recs[m->nrecs++] = i;
		if (x.kind != FMT_REC_PAGES)
			continue;
		/* The reader checked all of this at open; a mapping is only
		 * made when it holds here too. */
		uint64_t bytes = x.count * PAGE_SIZE_, off = x.offset + data;
		if (!x.count || x.count > FMT_MAX_READ_RUN_PAGES || x.first > t->pages || x.count > t->pages - x.first ||
		    off % PAGE_SIZE_ || x.span != data + bytes + FMT_REC_CRC_LEN || x.offset > m->file_bytes ||
		    x.span > m->file_bytes - x.offset)
			return err_set(e, -EBADMSG, "record at offset %llu (PAGES region %u pages %llu+%llu): not a page-"
			               "aligned run inside the file and the region (%llu pages, file %llu bytes)",
			               (ull)x.offset, x.region, (ull)x.first, (ull)x.count, (ull)t->pages,
			               (ull)m->file_bytes);
		int rc = 0;
		/* Smaller records are read by the worker threads (verify_one). */
		if (x.count >= MAP_MIN_PAGES && mmap(t->dst + x.first * PAGE_SIZE_, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, m->fd,
		              (off_t)off) == MAP_FAILED)
			rc = err_sys(e, -errno, "mmap of %llu bytes at file offset %llu over %p", (ull)bytes, (ull)off,
			             (void *)(t->dst + x.first * PAGE_SIZE_));
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void map_ahead(struct mapper *m, size_t k)
{
	if (k >= m->nrecs)
		return;
	struct reader_run x;
	reader_run_get(m->r, m->recs[k], &x);
	/* Not verifying, mapped pages are read when touched, not now. */
	if (m->no_verify && (x.kind != FMT_REC_PAGES || x.count >= MAP_MIN_PAGES))
		return;
	(void)posix_fadvise(m->fd, (off_t)x.offset, (off_t)x.span, POSIX_FADV_WILLNEED);
}

/* One record: a small PAGES record's data read into place (map_target
 * left it: it was checked there), then, unless not verifying, its head
 * and checksum pread and its pages read where they are. */
static int verify_one(struct mapper *m, size_t k, struct bgsnap_err *e)
{
	struct reader_run x;
	size_t i = m->recs[k];
	reader_run_get(m->r, i, &x);
	uint64_t data = reader_run_data_offset();
	const struct rst_target *tg = &m->t[m->target_of[x.region]];
	if (x.kind == FMT_REC_PAGES && x.count < MAP_MIN_PAGES) {
		int rc = rst_pread_all(m->fd, tg->dst + x.first * PAGE_SIZE_, x.count * PAGE_SIZE_, x.offset + data, e);
		if (rc < 0)
			return rc;
	}
	if (m->no_verify)
		return 0;
	uint8_t head[64], crcb[FMT_REC_CRC_LEN];
	if (data > sizeof(head))
		return err_set(e, -EINVAL, "record head of %llu bytes", (ull)data);
	int rc = rst_pread_all(m->fd, head, data, x.offset, e);
	if (rc == 0)
		rc = rst_pread_all(m->fd, crcb, sizeof(crcb), x.offset + x.span - sizeof(crcb), e);
	if (rc < 0)
		return rc;
	const uint8_t *pages = x.kind == FMT_REC_PAGES ? tg->dst + x.first * PAGE_SIZE_ : NULL;
	return reader_run_check_parts(m->r, i, head, pages, crcb, e);
}

static void *verify_worker(void *arg)
{
	struct mapper *m = arg;
	struct bgsnap_err e = { 0, "" };
	while (!atomic_load(&m->failed)) {
		size_t k = atomic_fetch_add(&m->next, 1);
		if (k >= m->nrecs)
			break;
		map_ahead(m, k + AHEAD_RECORDS * m->threads);
		if (verify_one(m, k, &e) < 0) {
			map_fail(m, &e);
			break;
		}
	}
	return NULL;
}

static int verify(struct mapper *m, unsigned threads)
{
	if (!threads) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		threads = c > 0 ? (unsigned)c : 1;
	}
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (threads > m->nrecs)
		threads = m->nrecs ? (unsigned)m->nrecs : 1;
	m->threads = threads;
	for (size_t k = 0; k < AHEAD_RECORDS * threads; k++)
		map_ahead(m, k);
	pthread_t th[MAX_THREADS];
	unsigned started = 0;
	for (unsigned i = 1; i < threads; i++) {
		if (thread_start(&th[started], "bgsnap-mapchk", verify_worker, m) != 0)
			break;
		started++;
	}
	verify_worker(m);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return m->err.code;
}

int bgsnap_restore_map(bgsnap_reader *r, const struct bgsnap_restore_target *targets, unsigned n,
                       unsigned threads, unsigned flags, unsigned *mapped, char *err, size_t err_len)
{
	struct mapper m;
	memset(&m, 0, sizeof(m));
	pthread_mutex_init(&m.mu, NULL);
	if (err && err_len)
		err[0] = '\0';
	if (mapped)
		*mapped = 0;
	int rc = 0, *map = NULL;
	struct bgsnap_restore_target *copy = NULL;
	unsigned ncopy = 0;
	struct bgsnap_file_info fi;
	if (!r) {
		rc = err_set(&m.err, -EINVAL, "no reader");
		goto out;
	}
	bgsnap_reader_info(r, &fi, sizeof fi);
	m.r = r;
	m.n = n;
	m.file_bytes = fi.file_bytes;
	if (!fi.file_bytes || (m.fd = reader_fd(r)) < 0) {
		rc = err_set(&m.err, -ESPIPE, "restore needs a random-access reader (bgsnap_reader_open)");
		goto out;
	}
	if (flags & ~(unsigned)(BGSNAP_RESTORE_MAP_NO_VERIFY | BGSNAP_RESTORE_MAP_ONLY)) {
		rc = err_set(&m.err, -EINVAL, "unknown restore-map flags 0x%x", flags);
		goto out;
	}
	if ((rc = rst_check_targets(r, targets, n, &m.t, &m.err)) < 0)
		goto out;
	m.target_of = malloc(fi.region_count * sizeof(*m.target_of));
	map = calloc(n, sizeof(*map));
	copy = calloc(n, sizeof(*copy));
	m.recs = malloc((reader_run_count(r) + 1) * sizeof(*m.recs));
	if (!m.target_of || !map || !copy || !m.recs) {
		rc = err_set(&m.err, -ENOMEM, "out of memory");
		goto out;
	}
	for (unsigned i = 0; i < fi.region_count; i++)
		m.target_of[i] = -1;
	for (unsigned i = 0; i < n; i++)
		m.target_of[m.t[i].region] = (int)i;
	if ((rc = plan(&m, map, &m.err)) < 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		if (map[i])
			continue;
		if (flags & BGSNAP_RESTORE_MAP_ONLY) {
			rc = err_set(&m.err, -ENOTSUP, "target %u (region %u) cannot be mapped: %s", i, m.t[i].region,
			             !reader_map_layout(r) ? "the file is not page-aligned (format version 4) or is a chain"
			                                   : "compressed records, a shared target or too many mappings");
			goto out;
		}
		copy[ncopy++] = targets[i];
	}
	for (unsigned i = 0; i < n && rc == 0; i++)
		if (map[i])
			rc = map_target(&m, i, &m.err);
	m.no_verify = (flags & BGSNAP_RESTORE_MAP_NO_VERIFY) != 0;
	if (rc == 0)
		rc = verify(&m, threads);
	if (rc < 0)
		goto out;
	if (mapped)
		for (unsigned i = 0; i < n; i++)
			*mapped += (unsigned)map[i];
	if (ncopy) {
		char m2[sizeof(m.err.msg)];
		rc = bgsnap_restore_reader(r, copy, ncopy, threads, m2, sizeof(m2));
		if (rc < 0)
			err_set(&m.err, rc, "%s", m2);
	}
out:
	free(map);
	free(copy);
	free(m.t);
	free(m.target_of);
	free(m.recs);
	pthread_mutex_destroy(&m.mu);
	if (rc < 0 && err && err_len)
		snprintf(err, err_len, "%s", m.err.msg[0] ? m.err.msg : strerror(-rc));
	return rc < 0 ? rc : 0;
}
