/*
 * t_chain_fork - a fork child never trusts the write tracking it
 * inherited: its copy of the regions carries no registration, so what the
 * parent's tracker says was written is not what the child's memory holds.
 * In the child, bgsnap_reset to the parent's last snapshot is refused
 * (and leaves the memory alone), the first snapshot is full (depth 0) and
 * its image equals the child's memory, and the one after it is
 * incremental over it with the child's writes only.  The parent's chain
 * goes on unaffected: its next snapshot is incremental and holds exactly
 * the pages the parent wrote, the ones written just before the fork
 * included, and the chain's image equals its memory.
 *
 * With the fork method, the snapshot's own child shares the host's pages
 * copy-on-write while the tracker stays in the host: pages the host
 * writes while that child still holds them (it is blocked on a full
 * pipe), on pages of the snapshot's set and outside it, and pages written
 * after it ended, are all in the next incremental snapshot, exactly, and
 * the snapshot taken across those writes holds the pause-instant content.
 *
 * timeout: 120
 */
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaintest.h"

#define MEM (2u << 20)
#define PAGES (MEM / TU_PAGE)

static void chain_image(const char *const *paths, unsigned n, uint8_t *img)
{
	uint8_t *images[1] = { img };
	size_t sizes[1] = { MEM };
	uint64_t held[1] = { 0 };
	memset(img, 0xee, MEM);
	for (unsigned i = 0; i < n; i++)
		ct_apply(paths[i], images, sizes, 1, held);
}

static void touch(uint8_t *mem, size_t page, uint8_t v)
{
	mem[page * TU_PAGE + 17] ^= v;
}

static void child(bgsnap_engine *e, uint8_t *mem, const char *dir, const char *parent_last)
{
	uint8_t *want = tu_map_anon(MEM), *img = tu_map_anon(MEM);
	memcpy(want, mem, MEM);
	int64_t n = bgsnap_reset(e, parent_last);
	CHECK(n < 0, "a reset in the fork child returned %lld: it trusted the parent's tracking", (long long)n);
	ct_check_equal("the child's memory after a refused reset", mem, want, MEM);
	char c0[800], c1[800];
	snprintf(c0, sizeof(c0), "%s/c0.bgs", dir);
	snprintf(c1, sizeof(c1), "%s/c1.bgs", dir);
	touch(mem, 40, 3);
	touch(mem, 41, 3);
	memcpy(want, mem, MEM);
	st_snapshot_ok(e, c0);
	struct bgsnap_stats s = ct_stats(e);
	CHECK(!s.incremental && s.depth == 0, "the child's first snapshot: incremental %d depth %u", s.incremental,
	      s.depth);
	const char *one[] = { c0 };
	chain_image(one, 1, img);
	ct_check_equal("the child's first snapshot", img, want, MEM);
	touch(mem, 300, 5);
	memcpy(want, mem, MEM);
	st_snapshot_ok(e, c1);
	s = ct_stats(e);
	CHECK(s.incremental && s.depth == 1 && s.dirty_pages == 1,
	      "the child's second snapshot: incremental %d depth %u, %llu pages", s.incremental, s.depth,
	      (unsigned long long)s.dirty_pages);
	const char *two[] = { c0, c1 };
	chain_image(two, 2, img);
	ct_check_equal("the child's chain", img, want, MEM);
	bgsnap_destroy(e);
}

static int fork_case(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	uint8_t *mem = tu_map_anon(MEM), *want = tu_map_anon(MEM), *img = tu_map_anon(MEM);
	tu_fill(mem, MEM, 23, 5);
	bgsnap_engine *e = ct_engine(method);
	st_add_region(e, "mem", mem, MEM);
	char s0[700], s1[700], s2[700], cdir[700];
	snprintf(s0, sizeof(s0), "%s/s0.bgs", dir);
	snprintf(s1, sizeof(s1), "%s/s1.bgs", dir);
	snprintf(s2, sizeof(s2), "%s/s2.bgs", dir);
	snprintf(cdir, sizeof(cdir), "%s/child", dir);
	CHECK(mkdir(cdir, 0700) == 0, "mkdir %s", cdir);
	st_snapshot_ok(e, s0);
	for (size_t p = 0; p < 10; p++)
		touch(mem, p * 37 % PAGES, 1);
	st_snapshot_ok(e, s1);
	CHECK(ct_stats(e).incremental, "the parent's second snapshot is not incremental");
	/* Written before the fork: the parent's next snapshot must hold them. */
	touch(mem, 7, 9);
	touch(mem, 8, 9);
	touch(mem, 200, 9);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		child(e, mem, cdir, s1);
		_exit(0);
	}
	/* The parent writes while the child runs. */
	touch(mem, 500, 2);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the fork child failed (status 0x%x)", status);
	memcpy(want, mem, MEM);
	st_snapshot_ok(e, s2);
	struct bgsnap_stats s = ct_stats(e);
	CHECK(s.incremental && s.depth == 2 && s.dirty_pages == 4,
	      "the parent's snapshot after the fork: incremental %d depth %u, %llu pages (4 written)", s.incremental,
	      s.depth, (unsigned long long)s.dirty_pages);
	const char *chain[] = { s0, s1, s2 };
	chain_image(chain, 3, img);
	ct_check_equal("the parent's chain after the fork", img, want, MEM);
	bgsnap_destroy(e);
	return 0;
}

struct drain {
	int in, out;
	int err;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	for (;;) {
		ssize_t n = read(d->in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			d->err = n < 0 ? errno : 0;
			return NULL;
		}
		if (write(d->out, buf, (size_t)n) != n) {
			d->err = EIO;
			return NULL;
		}
	}
}

static int in_set(size_t p, const size_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == p)
			return 1;
	return 0;
}

static int cow_case(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	uint8_t *mem = tu_map_anon(MEM), *want1 = tu_map_anon(MEM), *want2 = tu_map_anon(MEM);
	uint8_t *img = tu_map_anon(MEM);
	tu_fill(mem, MEM, 31, 6);
	bgsnap_engine *e = ct_engine(method);
	st_add_region(e, "mem", mem, MEM);
	char s0[700], s1[700], s2[700];
	snprintf(s0, sizeof(s0), "%s/s0.bgs", dir);
	snprintf(s1, sizeof(s1), "%s/s1.bgs", dir);
	snprintf(s2, sizeof(s2), "%s/s2.bgs", dir);
	st_snapshot_ok(e, s0);
	/* s1's set: 200 pages, 800 KiB, far more than a pipe holds, so the
	 * child blocks until the pipe is drained, holding every page. */
	for (size_t p = 0; p < 200; p++)
		touch(mem, p, 1);
	memcpy(want1, mem, MEM);
	int pp[2];
	CHECK(pipe(pp) == 0, "pipe");
	int out = open(s1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(out >= 0, "open %s", s1);
	CHECK_RC(bgsnap_start_fd(e, pp[1]), 0, "bgsnap_start_fd of the incremental snapshot");
	/* While the child holds the pages: written ones of the set (copied
	 * away from the child by the kernel), ones outside it, and the last
	 * page; then after the child ended. */
	size_t during[71], after[] = { 5, 400, 450 };
	size_t nd = 0;
	for (size_t p = 100; p < 150; p++)
		during[nd++] = p;
	for (size_t p = 300; p < 320; p++)
		during[nd++] = p;
	during[nd++] = PAGES - 1;
	for (size_t i = 0; i < nd; i++)
		touch(mem, during[i], 7);
	struct drain d = { .in = pp[0], .out = out };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, drain_main, &d) == 0, "pthread_create");
	int r = bgsnap_wait(e);
	close(pp[1]);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	close(pp[0]);
	close(out);
	CHECK(r == 0, "bgsnap_wait of the snapshot into a pipe: %s: %s", tu_errname(r), bgsnap_errmsg(e));
	CHECK(d.err == 0, "draining the pipe: %s", strerror(d.err));
	struct bgsnap_stats s = ct_stats(e);
	CHECK(s.incremental && s.depth == 1 && s.dirty_pages == 200,
	      "the snapshot across the writes: incremental %d depth %u, %llu pages (200 written)", s.incremental,
	      s.depth, (unsigned long long)s.dirty_pages);
	const char *one[] = { s0, s1 };
	chain_image(one, 2, img);
	ct_check_equal("the chain's image at the snapshot taken across the writes", img, want1, MEM);
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++)
		touch(mem, after[i], 11);
	memcpy(want2, mem, MEM);
	st_snapshot_ok(e, s2);
	s = ct_stats(e);
	uint64_t expect = nd;
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++)
		expect += !in_set(after[i], during, nd);
	CHECK(s.incremental && s.depth == 2 && s.dirty_pages == expect,
	      "the next snapshot: incremental %d depth %u, %llu pages (%llu written during and after the "
	      "fork)", s.incremental, s.depth, (unsigned long long)s.dirty_pages, (unsigned long long)expect);
	uint8_t *images[1] = { img };
	size_t sizes[1] = { MEM };
	uint64_t held[1] = { 0 };
	ct_apply(s2, images, sizes, 1, held);
	CHECK(held[0] == expect, "the next snapshot holds %llu pages, %llu were written",
	      (unsigned long long)held[0], (unsigned long long)expect);
	ct_check_equal("the chain's image after the writes during and after the fork", img, want2, MEM);
	bgsnap_destroy(e);
	CHECK_WRITABLE("the region after the chain", mem, MEM);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "fork", fork_case,
	                   ST_MASK(BGSNAP_METHOD_MPROTECT) | ST_MASK(BGSNAP_METHOD_STOP) | ST_MASK(BGSNAP_METHOD_FORK) |
	                   ST_MASK(BGSNAP_METHOD_UFFD) | ST_MASK(BGSNAP_METHOD_UFFD_SIGNAL),
	                   60);
	st_for_each_method(&t, "cow-writes", cow_case, ST_MASK(BGSNAP_METHOD_FORK), 60);
	tu_tally_exit(&t, "chain fork");
}
