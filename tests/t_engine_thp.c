/*
 * t_engine_thp.c - huge pages kept whole: a region backed by transparent
 * huge pages, written page by page while each method (but stop) snapshots
 * it, is backed by huge pages again (all but two blocks at most) once
 * bgsnap_wait returned
 * (BGSNAP_PARAM_THP_COLLAPSE, the default).  The same run with the
 * parameter at 0 shows what the snapshot leaves without it (printed, not
 * asserted: how much a snapshot splits is the kernel's business).  Skips
 * where the kernel gives no huge pages to this memory.
 * tags: concurrency
 * timeout: 300
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (32u << 20)
#define HUGE (2u << 20)

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* AnonHugePages of the mapping that holds p, in bytes; -1 if not found. */
static long long huge_bytes(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	char line[512];
	unsigned long long lo, hi, kb;
	int in = 0;
	long long out = -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) {
			out = (long long)kb << 10;
			break;
		}
	}
	fclose(f);
	return out;
}

struct writer {
	uint8_t *base;
	pthread_t tid;
	_Atomic int go;
};

/* One byte in every 4 KiB page: a write fault on every page still
 * protected, which splits its huge page. */
static void *write_pages(void *arg)
{
	struct writer *w = arg;
	for (size_t off = 64; off < MEM; off += 4096)
		w->base[off]++;
	return NULL;
}

static void resume_starts_writer(void *ctx)
{
	struct writer *w = ctx;
	if (pthread_create(&w->tid, NULL, write_pages, w) == 0)
		atomic_store(&w->go, 1);
}

/* One snapshot of fresh huge-page memory with the parameter at `collapse`;
 * returns the huge bytes after it, or -1 when the memory never was huge. */
static long long run(int method, int collapse)
{
	uint8_t *map = mmap(NULL, MEM + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(map != MAP_FAILED, "mmap: %s", strerror(errno));
	uint8_t *base = (uint8_t *)(((uintptr_t)map + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	CHECK(madvise(base, MEM, MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE: %s", strerror(errno));
	memset(base, 0x5a, MEM);
	madvise(base, MEM, MADV_COLLAPSE);
	long long before = huge_bytes(base);
	if (before < (long long)MEM / 2) {
		munmap(map, MEM + HUGE);
		return -1;
	}
	bgsnap_engine *e = st_engine(method, 1u << 20);
	CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_THP_COLLAPSE, collapse), 0, "%s", bgsnap_errmsg(e));
	st_add_region(e, "mem", base, MEM);
	struct writer w = { .base = base };
	struct bgsnap_hooks hk = { .resume = resume_starts_writer, .ctx = &w };
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "%s", bgsnap_errmsg(e));
	char path[4096];
	snprintf(path, sizeof(path), "%s/thp.%s.%d.bgs", tu_tmpdir(), bgsnap_method_name(method), collapse);
	st_snapshot_ok(e, path);
	CHECK(atomic_load(&w.go), "the writer thread did not start");
	pthread_join(w.tid, NULL);
	long long after = huge_bytes(base);
	printf("%s, collapse %d: huge pages %lld MiB before, %lld MiB after\n", bgsnap_method_name(method), collapse,
	       before >> 20, after >> 20);
	bgsnap_destroy(e);
	unlink(path);
	munmap(map, MEM + HUGE);
	return after;
}

static int one_method(void *arg)
{
	int method = *(int *)arg;
	long long off = run(method, 0);
	if (off < 0)
		SKIP("this kernel gave no transparent huge pages to MADV_HUGEPAGE memory");
	long long on = run(method, 1);
	/* Two blocks may be refused (a block the host writes during the
	 * collapse); without the collapse a quarter to a third stays split. */
	CHECK(on >= (long long)MEM - 2 * HUGE,
	      "%s: only %lld of %u MiB are huge pages again after the snapshot (without the collapse: %lld MiB)",
	      bgsnap_method_name(method), on >> 20, MEM >> 20, off >> 20);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "thp kept whole", one_method, ST_MASK_TRACKING | ST_MASK(BGSNAP_METHOD_FORK), 120);
	tu_tally_exit(&t, "t_engine_thp");
}
