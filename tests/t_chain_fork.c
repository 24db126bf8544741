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
 * timeout: 120
 */
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

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "fork", fork_case, ST_MASK(BGSNAP_METHOD_MPROTECT) | ST_MASK(BGSNAP_METHOD_STOP), 60);
	tu_tally_exit(&t, "chain fork");
}
