/*
 * restore.c - the restore part of `bgsnap bench` (restore.h).
 *
 * What is timed: eager restore_ms is the whole bgsnap_restore call on an
 * open reader, into a fresh mapping; read_ms is
 * the same file read start to end with 1 MiB preads into one buffer, what
 * `dd bs=1M of=/dev/null` does, measured right before in the same process.
 * Lazy resume_us is bgsnap_lazy_restore_start on an already open reader (a
 * host restoring a VM reads its device state from that reader anyway): from
 * the call to the memory being usable.  The lazily restored memory is then
 * checked by touching every page while the prefetch still runs, so the
 * check itself races the background fill, as a resumed host would.
 * Before that check, the first touch of TOUCH_SAMPLES pages spread over
 * the memory (far from where the prefetch starts) is timed one by one:
 * what a resumed host waits for a page it needs at once.
 */
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "cli/clock.h"
#include "workload.h"

static int restore_word(const char *s, size_t n)
{
	static const struct { const char *name; int mask; } w[] = {
		{ "eager", BENCH_RESTORE_EAGER }, { "lazy", BENCH_RESTORE_LAZY }, { "map", BENCH_RESTORE_MAP },
		{ "both", BENCH_RESTORE_EAGER | BENCH_RESTORE_LAZY },
		{ "all", BENCH_RESTORE_EAGER | BENCH_RESTORE_LAZY | BENCH_RESTORE_MAP },
	};
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (strlen(w[i].name) == n && !strncmp(s, w[i].name, n))
			return w[i].mask;
	return -1;
}

int bench_restore_parse(const char *s)
{
	int mask = 0;
	for (;;) {
		size_t n = strcspn(s, ",");
		int m = restore_word(s, n);
		if (m < 0)
			return -1;
		mask |= m;
		if (!s[n])
			return mask;
		s += n + 1;
	}
}

/*
 * Fresh, never-populated memory for a restore.  Inside a VM the hypervisor
 * backs guest RAM on its first use (here ~20 us per 4 KiB page, ~6 s per GiB),
 * which no restore method can avoid and dd never pays; populating the range
 * once and dropping it again (untimed) leaves the process range untouched
 * but its future pages host-backed, so the timings measure the restore.
 */
static uint8_t *fresh(size_t len, int memory)
{
	/* The other kinds are what the host would restore into: the same
	 * kind as the snapshotted memory (hugetlb pages are backed when the
	 * pool is reserved). */
	if (memory != WL_MEM_ANON && memory != WL_MEM_THP) {
		uint8_t *m;
		char err[256];
		if (wl_map_memory(memory, len, &m, err, sizeof(err)) != 0)
			return NULL;
		/* Huge pages just reserved have never been touched by the guest
		 * either (~3.5 s per GiB on first use here, all of it in the
		 * kernel's zeroing of the page): populated once and given back,
		 * to the pool (hugetlb; it hands the same pages out again) or out
		 * of the memfd's file (MADV_REMOVE), the target is untouched and
		 * its pages are host-backed. */
		(void)madvise(m, len, MADV_POPULATE_WRITE);
		(void)madvise(m, len, memory == WL_MEM_HUGETLB ? MADV_DONTNEED : MADV_REMOVE);
		return m;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, len, memory == WL_MEM_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	(void)madvise(p, len, MADV_POPULATE_WRITE);
	(void)madvise(p, len, MADV_DONTNEED);
	return p;
}

/* Every page of mem against the oracle; the first mismatch into msg. */
static bool check(const wl_oracle *o, const uint8_t *mem, size_t len, const char *what, char *msg, size_t msg_len)
{
	uint64_t bad = 0, first = 0;
	for (uint64_t p = 0; p < len / WL_PAGE; p++) {
		struct wl_mismatch mm;
		if (!wl_oracle_check_page(o, p, mem + p * WL_PAGE, &mm)) {
			if (!bad)
				first = p;
			bad++;
		}
	}
	if (bad)
		snprintf(msg, msg_len, "%s restore: %" PRIu64 " pages differ from the snapshot (first: page %" PRIu64 ")",
		         what, bad, first);
	return bad == 0;
}

static int read_file_ms(const char *path, double *ms, uint64_t *bytes)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 1u << 20;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	uint64_t off = 0;
	double t0 = mono_s();
	for (;;) {
		ssize_t n = pread(fd, buf, cap, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (uint64_t)n;
	}
	*ms = (mono_s() - t0) * 1000.0;
	*bytes = off;
	free(buf);
	close(fd);
	return 0;
}

/* The file out of the page cache (its pages are clean: the snapshot was
 * synced at commit), as `echo 3 > /proc/sys/vm/drop_caches` would, without
 * dropping every other file's cache on a shared machine. */
static int evict(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int e = fdatasync(fd) < 0 ? -errno : -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return e;
}

/* A restore of the snapshot: what it needs and where its results go. */
struct job {
	const char *path;
	bgsnap_reader *r;
	unsigned region;
	size_t mem_bytes;
	int memory;                /* enum wl_memory of the restore's target */
	const wl_oracle *oracle;
	struct bench_restore_result *out;
};

/* The file read as dd would (out->read_ms), from the disk when uncached. */
static int read_once(const struct job *j)
{
	struct bench_restore_result *out = j->out;
	bool uncached = out->which & BENCH_RESTORE_UNCACHED;
	if ((uncached && evict(j->path) < 0) || read_file_ms(j->path, &out->read_ms, &out->file_bytes) < 0) {
		snprintf(out->msg, sizeof(out->msg), "restore: reading or uncaching %s failed", j->path);
		return -1;
	}
	return 0;
}

/* Restore by mapping, timed with the checksums checked and then without;
 * each result checked against the oracle. */
static int restore_map(const struct job *j, unsigned threads)
{
	struct bench_restore_result *out = j->out;
	bool uncached = out->which & BENCH_RESTORE_UNCACHED;
	for (int pass = 0; pass < 2; pass++) {
		char err[400];
		uint8_t *m = fresh(j->mem_bytes, j->memory);
		if (!m || (uncached && evict(j->path) < 0)) {
			snprintf(out->msg, sizeof(out->msg), "restore: mmap or uncaching %s failed", j->path);
			if (m)
				munmap(m, j->mem_bytes);
			return -1;
		}
		struct bgsnap_restore_target t = { j->region, m, j->mem_bytes };
		unsigned mapped = 0;
		double t0 = mono_s();
		int e = bgsnap_restore_map(j->r, &t, 1, threads, pass ? BGSNAP_RESTORE_MAP_NO_VERIFY : 0, &mapped, err,
		                           sizeof(err));
		double ms = (mono_s() - t0) * 1000.0;
		*(pass ? &out->map_noverify_ms : &out->map_ms) = ms;
		out->map_mapped = mapped;
		if (e < 0)
			snprintf(out->msg, sizeof(out->msg), "map restore: %s", err);
		else
			out->verified &= check(j->oracle, m, j->mem_bytes, pass ? "map (not verified)" : "map", out->msg,
			                       sizeof(out->msg));
		munmap(m, j->mem_bytes);
		if (e < 0)
			return -1;
	}
	return 0;
}

static int restore_eager(const struct job *j, unsigned threads)
{
	struct bench_restore_result *out = j->out;
	char err[400];
	bool uncached = out->which & BENCH_RESTORE_UNCACHED;
	uint8_t *m = fresh(j->mem_bytes, j->memory);
	if (!m || (uncached && evict(j->path) < 0)) {
		snprintf(out->msg, sizeof(out->msg), "restore: mmap, reading or uncaching %s failed", j->path);
		if (m)
			munmap(m, j->mem_bytes);
		return -1;
	}
	struct bgsnap_restore_target t = { j->region, m, j->mem_bytes };
	double t0 = mono_s();
	int e = bgsnap_restore_reader(j->r, &t, 1, threads, err, sizeof(err));
	out->restore_ms = (mono_s() - t0) * 1000.0;
	if (e < 0)
		snprintf(out->msg, sizeof(out->msg), "eager restore: %s", err);
	else
		out->verified &= check(j->oracle, m, j->mem_bytes, "eager", out->msg, sizeof(out->msg));
	out->huge_pages = wl_huge_pages(m, j->mem_bytes);
	munmap(m, j->mem_bytes);
	return e < 0 ? -1 : 0;
}

#define TOUCH_SAMPLES 256u

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Times the first read of TOUCH_SAMPLES pages, visited in a scattered
 * order from the end of the memory backwards (the prefetch goes forwards
 * from its start). */
static void time_touches(const uint8_t *m, size_t mem_bytes, struct bench_restore_result *out)
{
	size_t pages = mem_bytes / 4096;
	size_t n = pages < TOUCH_SAMPLES ? pages : TOUCH_SAMPLES;
	double us[TOUCH_SAMPLES];
	for (size_t i = 0; i < n; i++) {
		/* Page i of n equal slices, from the last slice, with an odd
		 * offset inside it: different chunks, no readahead help. */
		size_t slice = pages / n;
		size_t p = (n - 1 - i) * slice + (i * 7919u) % (slice ? slice : 1);
		double t0 = mono_s();
		(void)*(const volatile uint8_t *)(m + p * 4096);
		us[i] = (mono_s() - t0) * 1e6;
	}
	qsort(us, n, sizeof us[0], cmp_double);
	out->touch_p50_us = n ? us[n / 2] : 0;
	out->touch_p99_us = n ? us[n * 99 / 100] : 0;
}

/* The memory is checked while the prefetch still runs (see the top). */
static int restore_lazy(const struct job *j)
{
	struct bench_restore_result *out = j->out;
	char err[400];
	uint8_t *m = fresh(j->mem_bytes, j->memory);
	if (!m || ((out->which & BENCH_RESTORE_UNCACHED) && evict(j->path) < 0)) {
		snprintf(out->msg, sizeof(out->msg), "restore: mmap or uncaching %s failed", j->path);
		if (m)
			munmap(m, j->mem_bytes);
		return -1;
	}
	struct bgsnap_restore_target t = { j->region, m, j->mem_bytes };
	bgsnap_lazy *l;
	double t0 = mono_s();
	int e = bgsnap_lazy_restore_start(&l, j->r, &t, 1, err, sizeof(err));
	double t1 = mono_s();
	if (e < 0) {
		snprintf(out->msg, sizeof(out->msg), "lazy restore: %s", err);
		munmap(m, j->mem_bytes);
		return -1;
	}
	out->resume_us = (uint64_t)((t1 - t0) * 1e6);
	time_touches(m, j->mem_bytes, out);
	bool ok = check(j->oracle, m, j->mem_bytes, "lazy", out->msg, sizeof(out->msg));
	e = bgsnap_lazy_wait(l);
	struct bgsnap_lazy_stats st;
	bgsnap_lazy_get_stats(l, &st, sizeof st);
	out->lazy_total_ms = st.total_us / 1000.0;
	out->lazy_demand = st.pages_demand;
	out->lazy_prefetched = st.pages_prefetched;
	if (e < 0) {
		snprintf(out->msg, sizeof(out->msg), "lazy restore: %s", bgsnap_lazy_errmsg(l));
		ok = false;
	}
	out->verified &= ok;
	bgsnap_lazy_free(l);
	munmap(m, j->mem_bytes);
	return 0;
}

int bench_restore(const char *path, int which, int memory, size_t mem_bytes, unsigned threads,
                  const wl_oracle *oracle, struct bench_restore_result *out)
{
	memset(out, 0, sizeof(*out));
	out->which = which;   /* with BENCH_RESTORE_UNCACHED */
	out->verified = true;
	char err[400];
	struct job j = { .path = path, .mem_bytes = mem_bytes, .memory = memory, .oracle = oracle, .out = out };
	if (bgsnap_reader_open(&j.r, path, err, sizeof(err)) < 0) {
		snprintf(out->msg, sizeof(out->msg), "restore: %s", err);
		out->verified = false;
		return -1;
	}
	int reg = bgsnap_reader_find_region(j.r, "mem");
	int rc = 0;
	if (reg < 0) {
		snprintf(out->msg, sizeof(out->msg), "restore: no region \"mem\"");
		rc = -1;
	}
	j.region = (unsigned)reg;
	if (rc == 0 && (which & (BENCH_RESTORE_EAGER | BENCH_RESTORE_MAP)))
		rc = read_once(&j);
	if (rc == 0 && (which & BENCH_RESTORE_EAGER))
		rc = restore_eager(&j, threads);
	if (rc == 0 && (which & BENCH_RESTORE_MAP))
		rc = restore_map(&j, threads);
	if (rc == 0 && (which & BENCH_RESTORE_LAZY))
		rc = restore_lazy(&j);
	bgsnap_reader_close(j.r);
	if (rc < 0)
		out->verified = false;
	return rc;
}
