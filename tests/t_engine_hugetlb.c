/*
 * t_engine_hugetlb.c - hugetlb memory as a region, for every method: private
 * and shared MAP_HUGETLB, memfd_create(MFD_HUGETLB) and a file on a hugetlbfs
 * mount, each with two writer threads rewriting it while the snapshot runs.
 * The snapshot must hold the pause-instant content (copied by the pause's
 * save_state hook), verify, and restore eagerly into hugetlb memory exactly,
 * and lazily (read back while the prefetch runs; shared kinds too: the
 * pages land in the file); the region stays on huge pages; fork refuses
 * the shared kinds with a message.  Also: a region
 * that cuts a huge page (-EINVAL) or mixes page sizes (-ENOTSUP), and a
 * chain (mprotect, stop) whose copy buffer is smaller than a huge page:
 * its incremental snapshot holds exactly the two written huge pages.
 *
 * Needs free 2 MiB huge pages: as root it raises the pool
 * (/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages, the
 * /proc/sys/vm/nr_hugepages of the default size) and puts the old value
 * back at exit, also on SIGTERM/SIGINT (the runner's timeout); otherwise it
 * skips with the reason.
 * tags: concurrency
 * timeout: 900
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "snaptest.h"
#include "chaintest.h"
#include "hugepool.h"

#define HUGE (2u << 20)
#define MEM (8u << 20)
#define NEED_FREE 24       /* pages: a region, its restore, fork's copies */
#define HUGEDIR "/sys/kernel/mm/hugepages/hugepages-2048kB"
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004u
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

static char mnt[700];           /* our hugetlbfs mount, "" if none */
static pid_t mnt_owner;
static char hugefs_dir[700];    /* where the hugetlbfs case makes its file */

/* Async-signal-safe (open, write, close, umount2): also run from the
 * signal handler.  Only the process that changed things undoes them: the
 * forked cases exit through here too. */
static void put_back(void)
{
	if (mnt[0] && getpid() == mnt_owner) {
		umount2(mnt, MNT_DETACH);
		mnt[0] = '\0';
	}
	hp_put_back();
}

static void on_signal(int sig)
{
	put_back();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void reserve_pages(void)
{
	char why[300];
	if (hp_reserve(HUGEDIR, NEED_FREE, NEED_FREE, why, sizeof(why)) < 0)
		SKIP("2 MiB huge pages: %s", why);
	/* Ours: the mount is undone with the pool. */
	atexit(put_back);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
}

/* A hugetlbfs directory: an existing mount, or one we make (root). */
static void find_hugetlbfs(void)
{
	FILE *f = fopen("/proc/mounts", "re");
	char dev[256], dir[512], type[64];
	while (f && fscanf(f, "%255s %511s %63s %*[^\n]", dev, dir, type) == 3) {
		struct statfs fs;
		if (!strcmp(type, "hugetlbfs") && statfs(dir, &fs) == 0 && access(dir, W_OK) == 0 &&
		    fs.f_bsize == HUGE) {
			snprintf(hugefs_dir, sizeof(hugefs_dir), "%s", dir);
			break;
		}
	}
	if (f)
		fclose(f);
	if (hugefs_dir[0] || geteuid() != 0)
		return;
	snprintf(mnt, sizeof(mnt), "%s/hugefs", tu_tmpdir());
	if (mkdir(mnt, 0700) == 0 && mount("none", mnt, "hugetlbfs", 0, "pagesize=2M") == 0) {
		mnt_owner = getpid();
		snprintf(hugefs_dir, sizeof(hugefs_dir), "%s", mnt);
		return;
	}
	mnt[0] = '\0';
}

enum kind { K_PRIVATE, K_SHARED, K_MEMFD, K_HUGEFS, K_COUNT };
static const char *const kind_name[] = { "private", "shared", "memfd", "hugetlbfs" };
static const int kind_shared[] = { 0, 1, 1, 0 };

/* MEM bytes of hugetlb memory of kind k. */
static uint8_t *map_kind(enum kind k)
{
	int fd = -1, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB;
	if (k == K_SHARED)
		flags = MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB;
	if (k == K_MEMFD || k == K_HUGEFS) {
		char path[800];
		snprintf(path, sizeof(path), "%s/t_engine_hugetlb.%d", hugefs_dir, (int)getpid());
		fd = k == K_MEMFD ? memfd_create("t_engine_hugetlb", MFD_CLOEXEC | MFD_HUGETLB)
		                  : open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0, "%s: %s", k == K_MEMFD ? "memfd_create(MFD_HUGETLB)" : path, strerror(errno));
		if (k == K_HUGEFS)
			unlink(path);
		CHECK(ftruncate(fd, MEM) == 0, "ftruncate: %s", strerror(errno));
		flags = k == K_MEMFD ? MAP_SHARED : MAP_PRIVATE;
	}
	uint8_t *m = mmap(NULL, MEM, PROT_READ | PROT_WRITE, flags, fd, 0);
	int e = errno;
	if (fd >= 0)
		close(fd);
	CHECK(m != MAP_FAILED, "mmap %s hugetlb memory: %s", kind_name[k], strerror(e));
	return m;
}

/* Bytes of [p, p+len) on hugetlb pages, from /proc/self/smaps. */
static uint64_t hugetlb_bytes(const void *p, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	CHECK(f != NULL, "/proc/self/smaps: %s", strerror(errno));
	uint64_t lo = (uintptr_t)p, hi = lo + len, a = 0, b = 0, sum = 0;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long x, y, kb;
		if (sscanf(line, "%llx-%llx ", &x, &y) == 2) {
			a = x;
			b = y;
		} else if (a < hi && b > lo && (sscanf(line, "Private_Hugetlb: %llu kB", &kb) == 1 ||
		                                sscanf(line, "Shared_Hugetlb: %llu kB", &kb) == 1)) {
			sum += kb << 10;
		}
	}
	fclose(f);
	return sum;
}

static void check_restores(const char *path, enum kind k, const uint8_t *want)
{
	char err[512] = "";
	bgsnap_reader *rd = NULL;
	CHECK_RC(bgsnap_reader_open(&rd, path, err, sizeof(err)), 0, "reader_open: %s", err);
	int idx = bgsnap_reader_find_region(rd, "huge");
	CHECK(idx >= 0, "no region 'huge' in %s", path);
	tu_phase("eager restore into hugetlb memory");
	uint8_t *dst = map_kind(k);
	struct bgsnap_restore_target t = { (unsigned)idx, dst, MEM };
	CHECK_RC(bgsnap_restore_reader(rd, &t, 1, 2, err, sizeof(err)), 0, "eager restore into %s hugetlb: %s",
	         kind_name[k], err);
	for (size_t pg = 0; pg < MEM / TU_PAGE; pg++)
		CHECK(!memcmp(dst + pg * TU_PAGE, want + pg * TU_PAGE, TU_PAGE),
		      "eager restore into %s hugetlb memory: page %zu differs", kind_name[k], pg);
	CHECK(hugetlb_bytes(dst, MEM) == MEM, "the restored memory is on %llu bytes of huge pages, not %u",
	      (unsigned long long)hugetlb_bytes(dst, MEM), MEM);
	munmap(dst, MEM);
	tu_phase("lazy restore into hugetlb memory");
	dst = map_kind(k);
	bgsnap_lazy *l = NULL;
	t.dst = dst;
	CHECK_RC(bgsnap_lazy_restore_start(&l, rd, &t, 1, err, sizeof(err)), 0, "lazy restore into %s hugetlb "
	         "memory: %s", kind_name[k], err);
	/* Touched while the prefetch runs: demand faults race it. */
	for (size_t pg = MEM / TU_PAGE; pg-- > 0;)
		CHECK(!memcmp(dst + pg * TU_PAGE, want + pg * TU_PAGE, TU_PAGE),
		      "lazy restore into %s hugetlb memory: page %zu differs", kind_name[k], pg);
	CHECK_RC(bgsnap_lazy_wait(l), 0, "lazy wait: %s", bgsnap_lazy_errmsg(l));
	struct bgsnap_lazy_stats ls;
	CHECK_RC(bgsnap_lazy_get_stats(l, &ls, sizeof ls), 0, "lazy stats");
	CHECK(ls.pages_demand + ls.pages_prefetched == MEM / TU_PAGE && !ls.pages_failed,
	      "lazy restore installed %llu + %llu pages of %u (%llu failed)", (unsigned long long)ls.pages_demand,
	      (unsigned long long)ls.pages_prefetched, MEM / TU_PAGE, (unsigned long long)ls.pages_failed);
	CHECK(hugetlb_bytes(dst, MEM) == MEM, "the lazily restored memory is on %llu bytes of huge pages",
	      (unsigned long long)hugetlb_bytes(dst, MEM));
	bgsnap_lazy_free(l);
	munmap(dst, MEM);
	bgsnap_reader_close(rd);
}

static int run_kind(int method, enum kind k)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", tu_tmpdir());
	uint8_t *mem = map_kind(k);
	tu_fill(mem, MEM, 61 + (unsigned)k, 5);
	struct tu_writers w;
	tu_writers_start(&w, 2, mem, MEM);
	struct st_host h = { .base = mem, .len = MEM, .w = &w, .copy = tu_map_anon(MEM) };
	/* A copy buffer smaller than a huge page: the engine must raise it. */
	bgsnap_engine *e = st_engine(method, 16 * TU_PAGE);
	st_add_region(e, "huge", mem, MEM);
	st_set_hooks(e, &h);
	uint64_t before = hugetlb_bytes(mem, MEM);
	CHECK(before == MEM, "the %s region is on %llu bytes of huge pages, not %u", kind_name[k],
	      (unsigned long long)before, MEM);
	tu_phase("bgsnap_start on hugetlb memory");
	int r = bgsnap_start(e, path);
	if (r == -ENOTSUP && method == BGSNAP_METHOD_FORK && kind_shared[k]) {
		CHECK_ERRMSG(e);
		CHECK(strstr(bgsnap_errmsg(e), "shared") != NULL, "fork's refusal does not say why: %s",
		      bgsnap_errmsg(e));
		printf("    fork refuses shared hugetlb memory: %s\n", bgsnap_errmsg(e));
	} else {
		CHECK_RC(r, 0, "start on %s hugetlb memory: %s", kind_name[k], bgsnap_errmsg(e));
		tu_phase("bgsnap_wait on hugetlb memory");
		CHECK_RC(bgsnap_wait(e), 0, "wait: %s", bgsnap_errmsg(e));
		struct bgsnap_stats st;
		CHECK_RC(bgsnap_get_stats(e, &st, sizeof st), 0, "get_stats");
		if (method != BGSNAP_METHOD_FORK && method != BGSNAP_METHOD_STOP)
			CHECK(st.copybuf_capacity >= HUGE, "copy buffer of %llu bytes cannot hold a huge page",
			      (unsigned long long)st.copybuf_capacity);
		CHECK_FILE_REGION(path, "huge", h.copy, MEM);
	}
	CHECK_WRITERS_PROGRESS(&w);
	CHECK_WRITABLE("hugetlb region", mem, MEM);
	uint64_t after = hugetlb_bytes(mem, MEM);
	CHECK(after == MEM, "after the snapshot the region is on %llu bytes of huge pages, not %u",
	      (unsigned long long)after, MEM);
	bgsnap_destroy(e);
	tu_writers_stop(&w);
	if (r == 0)
		check_restores(path, k, h.copy);
	munmap(mem, MEM);
	return 0;
}

static int case_private(void *arg) { return run_kind(*(int *)arg, K_PRIVATE); }
static int case_shared(void *arg) { return run_kind(*(int *)arg, K_SHARED); }
static int case_memfd(void *arg) { return run_kind(*(int *)arg, K_MEMFD); }
static int case_hugefs(void *arg) { return run_kind(*(int *)arg, K_HUGEFS); }

/* A 4 KiB region of an odd page count before a hugetlb one, protected by
 * two threads: the threads' shares are cut in the engine's page numbering,
 * which is then not aligned to the hugetlb region's huge pages. */
static int case_wp_split(void *arg)
{
	int method = *(int *)arg;
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", tu_tmpdir());
	uint8_t *mem = map_kind(K_PRIVATE);
	tu_fill(mem, MEM, 71, 5);
	uint8_t *small = tu_map_anon(3 * TU_PAGE);
	tu_fill(small, 3 * TU_PAGE, 72, 5);
	struct tu_writers w;
	tu_writers_start(&w, 2, mem, MEM);
	struct st_host h = { .base = mem, .len = MEM, .w = &w, .copy = tu_map_anon(MEM) };
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = method;
	o.wp_threads = 2;
	bgsnap_engine *e = NULL;
	CHECK_RC(bgsnap_create(&e, &o), 0, "create");
	st_add_region(e, "small", small, 3 * TU_PAGE);
	st_add_region(e, "huge", mem, MEM);
	st_set_hooks(e, &h);
	CHECK_RC(bgsnap_start(e, path), 0, "start with two write-protect threads: %s", bgsnap_errmsg(e));
	CHECK_RC(bgsnap_wait(e), 0, "wait: %s", bgsnap_errmsg(e));
	CHECK_FILE_REGION(path, "huge", h.copy, MEM);
	CHECK_FILE_REGION(path, "small", small, 3 * TU_PAGE);
	CHECK_WRITERS_PROGRESS(&w);
	bgsnap_destroy(e);
	tu_writers_stop(&w);
	munmap(mem, MEM);
	return 0;
}

/* Regions that cut a huge page, or mix page sizes, are refused. */
static int case_shapes(void *arg)
{
	(void)arg;
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_UFFD, 0);
	uint8_t *mem = map_kind(K_PRIVATE);
	memset(mem, 1, MEM);
	CHECK_RC(bgsnap_add_region(e, "cut", mem + TU_PAGE, MEM - HUGE), -EINVAL, "a region not aligned to its "
	         "huge pages must be refused");
	CHECK(strstr(bgsnap_errmsg(e), "huge page") != NULL, "no reason given: %s", bgsnap_errmsg(e));
	CHECK_RC(bgsnap_add_region(e, "short", mem, MEM - TU_PAGE), -EINVAL, "a length that is not whole huge "
	         "pages must be refused");
	/* Anonymous 4 KiB memory right after hugetlb memory. */
	uint8_t *span = mmap(NULL, 2 * MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(span != MAP_FAILED, "mmap: %s", strerror(errno));
	uint8_t *h2 = (uint8_t *)(((uintptr_t)span + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	CHECK(mmap(h2, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED, -1, 0) ==
	      h2, "mmap MAP_FIXED|MAP_HUGETLB: %s", strerror(errno));
	memset(h2, 2, 2 * HUGE);
	CHECK_RC(bgsnap_add_region(e, "mixed", h2, 2 * HUGE), -ENOTSUP, "a region mixing 2 MiB and 4 KiB pages "
	         "must be refused");
	printf("    mixed page sizes: %s\n", bgsnap_errmsg(e));
	CHECK_RC(bgsnap_add_region(e, "whole", mem, MEM), 0, "aligned hugetlb memory: %s", bgsnap_errmsg(e));
	bgsnap_destroy(e);
	munmap(span, 2 * MEM);
	munmap(mem, MEM);
	return 0;
}

/* A chain over private hugetlb memory with a copy buffer smaller than a
 * huge page (1 MiB): the incremental snapshot saves whole huge pages
 * only, whether copied in its pause or protected, and the chain's image
 * equals the memory at the second pause. */
static int case_chain(void *arg)
{
	int method = *(int *)arg;
	uint8_t *mem = map_kind(K_PRIVATE);
	for (size_t i = 0; i < MEM; i += TU_PAGE)
		memset(mem + i, (int)(i / TU_PAGE * 7 + 1), TU_PAGE);
	bgsnap_engine *e = ct_engine(method);
	st_add_region(e, "ram", mem, MEM);
	char p0[600], p1[600];
	snprintf(p0, sizeof(p0), "%s/c0.bgs", tu_tmpdir());
	snprintf(p1, sizeof(p1), "%s/c1.bgs", tu_tmpdir());
	st_snapshot_ok(e, p0);
	CHECK(ct_stats(e).incremental == 0, "the first snapshot of a chain is not a full one");
	/* Written: one byte of huge page 1, two of huge page 3. */
	mem[1 * HUGE + 5 * TU_PAGE] ^= 0xff;
	mem[3 * HUGE] ^= 0x5a;
	mem[3 * HUGE + HUGE - 1] ^= 0xa5;
	st_snapshot_ok(e, p1);
	struct bgsnap_stats s = ct_stats(e);
	CHECK(s.incremental == 1, "the second snapshot is not incremental");
	uint8_t *img = malloc(MEM);
	CHECK(img, "malloc");
	memset(img, 0xee, MEM);
	size_t size = MEM;
	uint64_t held = 0;
	ct_apply(p0, &img, &size, 1, &held);
	CHECK(held == MEM / TU_PAGE, "the full snapshot holds %llu pages of %u", (unsigned long long)held,
	      MEM / TU_PAGE);
	held = 0;
	ct_apply(p1, &img, &size, 1, &held);
	CHECK(held == 2 * HUGE / TU_PAGE, "the incremental snapshot holds %llu pages, not the two written huge "
	      "pages (%u)", (unsigned long long)held, 2 * HUGE / TU_PAGE);
	ct_check_equal("the chain's image", img, mem, MEM);
	free(img);
	bgsnap_destroy(e);
	munmap(mem, MEM);
	return 0;
}

int main(void)
{
	reserve_pages();
	find_hugetlbfs();
	struct tu_tally t = { 0 };
	tu_tally_add(&t, tu_run_case("shapes", case_shapes, NULL, 60));
	st_for_each_method(&t, "wp-split", case_wp_split, ST_MASK(BGSNAP_METHOD_UFFD), 120);
	st_for_each_method(&t, "private", case_private, ~0u, 120);
	st_for_each_method(&t, "shared", case_shared, ~0u, 120);
	st_for_each_method(&t, "memfd", case_memfd, ~0u, 120);
	st_for_each_method(&t, "chain", case_chain, ST_MASK(BGSNAP_METHOD_MPROTECT) | ST_MASK(BGSNAP_METHOD_STOP), 120);
	if (hugefs_dir[0]) {
		st_for_each_method(&t, "hugetlbfs", case_hugefs, ~0u, 120);
	} else {
		printf("skip hugetlbfs: no writable hugetlbfs mount and not root to make one\n");
		tu_tally_skip(&t, "no hugetlbfs mount");
	}
	if (access("/sys/kernel/mm/hugepages/hugepages-1048576kB", F_OK) != 0)
		printf("note: this machine has no 1 GiB huge pages: not tested\n");
	put_back();
	tu_tally_exit(&t, "t_engine_hugetlb");
}
