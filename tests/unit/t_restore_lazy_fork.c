/*
 * t_restore_lazy_fork - a fork() while a lazy restore runs never gives the
 * child zeros: an 8 MiB region (every 7th page zero) is restored lazily,
 * the parent touches a few pages and forks at once; the child compares
 * every page with the snapshot's bytes, then frees its copy of the
 * parent's restore (which must neither hang nor touch the parent's
 * threads).  The parent's own memory holds the snapshot too, and the
 * restore ends without error.  A second fork after the restore completed,
 * and a fork from a second thread while the first forks, see the same.
 * With a corrupt record, a child forked during the restore finds each page
 * either the snapshot's or raising SIGBUS (poisoned; SIGSEGV without
 * UFFDIO_POISON), exactly the record's pages, never zeros.
 * tags: concurrency
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "testutil.h"

#define PAGES 2048u   /* 8 MiB */

static struct fg_spec g_s;
static uint8_t *g_dst;

/* In a child: the number of pages that differ from the snapshot. */
static unsigned bad_pages(void)
{
	unsigned bad = 0;
	for (unsigned p = 0; p < PAGES; p++)
		bad += memcmp(g_dst + (size_t)p * TU_PAGE, g_s.mem[0] + (size_t)p * TU_PAGE, TU_PAGE) != 0;
	return bad;
}

/* Forks a child that checks every page (and frees `l` when given);
 * returns its number of bad pages, or fails the test. */
static unsigned fork_and_check(bgsnap_lazy *l, const char *what)
{
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "%s: fork: %s", what, strerror(errno));
	if (pid == 0) {
		unsigned bad = bad_pages();
		if (l)
			bgsnap_lazy_free(l);
		_exit(bad > 250 ? 250 : (int)bad);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "%s: waitpid: %s", what, strerror(errno));
	CHECK(WIFEXITED(st), "%s: the child died (status 0x%x)", what, st);
	return (unsigned)WEXITSTATUS(st);
}

/* In a child: pages [first, first+count) must fault, every other page hold
 * the snapshot's bytes.  Returns the number of pages that do not. */
static unsigned bad_pages_poisoned(uint64_t first, uint64_t count)
{
	unsigned bad = 0;
	for (uint64_t p = 0; p < PAGES; p++) {
		const uint8_t *d = g_dst + p * TU_PAGE;
		int in = p >= first && p - first < count;
		if (tu_read_signal(d))
			bad += !in;
		else
			bad += in || memcmp(d, g_s.mem[0] + p * TU_PAGE, TU_PAGE) != 0;
	}
	return bad;
}

/* A corrupt PAGES record: fork during the restore. */
static void corrupt_case(const char *good)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/lazy_fork_bad.bgs", tu_tmpdir());
	size_t len;
	uint8_t *b = fg_read_file(good, &len);
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, good, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_record rec;
	uint64_t off = 0, first = 0, count = 0;
	int k;
	while ((k = bgsnap_reader_next(r, &rec)) > 0)
		if (rec.kind == BGSNAP_REC_PAGES && rec.count >= 2 && !count) {
			off = rec.offset;
			first = rec.first_page;
			count = rec.count;
		}
	CHECK(k == 0 && count, "no PAGES record found");
	bgsnap_reader_close(r);
	b[off + 16 + 24 + 100] ^= 0x40;   /* page data: the record's crc no longer matches */
	fg_write_file(path, b, len);
	free(b);

	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	g_dst = mmap(NULL, (size_t)PAGES * TU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(g_dst != MAP_FAILED, "mmap: %s", strerror(errno));
	struct bgsnap_restore_target t = { 0, g_dst, (size_t)PAGES * TU_PAGE };
	bgsnap_lazy *l;
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), 0, "lazy start: %s", err);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		unsigned bad = bad_pages_poisoned(first, count);
		_exit(bad > 250 ? 250 : (int)bad);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "corrupt record: in the child forked during the restore, "
	      "%d pages were neither the snapshot's nor poisoned as expected (status 0x%x)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1, st);
	CHECK_RC(bgsnap_lazy_wait(l), -EBADMSG, "wait on a file with a corrupt record");
	bgsnap_lazy_free(l);
	bgsnap_reader_close(r);
	munmap(g_dst, (size_t)PAGES * TU_PAGE);
	unlink(path);
	printf("    corrupt record: the child saw its %llu pages poisoned, every other page restored\n",
	       (unsigned long long)count);
}

static void *fork_thread(void *arg)
{
	*(unsigned *)arg = fork_and_check(NULL, "fork from a second thread");
	return NULL;
}

int main(void)
{
	memset(&g_s, 0, sizeof(g_s));
	g_s.nregions = 1;
	g_s.pages[0] = PAGES;
	g_s.zero_every = 7;
	g_s.seed = 5;
	g_s.max_run = 64;
	fg_build(&g_s);
	char path[600];
	snprintf(path, sizeof(path), "%s/lazy_fork.bgs", tu_tmpdir());
	fg_write_path(&g_s, path);

	for (int round = 0; round < 3; round++) {
		bgsnap_reader *r;
		char err[600];
		CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
		g_dst = mmap(NULL, (size_t)PAGES * TU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(g_dst != MAP_FAILED, "mmap: %s", strerror(errno));
		struct bgsnap_restore_target t = { 0, g_dst, (size_t)PAGES * TU_PAGE };
		bgsnap_lazy *l;
		int rc = bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err));
		if (rc == -ENOSYS || rc == -EPERM)
			SKIP("lazy restore needs userfaultfd: %s", err);
		CHECK_RC(rc, 0, "lazy start: %s", err);
		/* A few pages in on demand, most not yet. */
		volatile uint8_t sink = 0;
		for (unsigned p = 0; p < PAGES; p += 512)
			sink ^= g_dst[(size_t)p * TU_PAGE];
		(void)sink;
		struct bgsnap_lazy_stats st;
		bgsnap_lazy_get_stats(l, &st, sizeof(st));
		int done_before = st.done;

		unsigned bad, bad2 = 0;
		pthread_t th;
		if (round == 2)
			CHECK(pthread_create(&th, NULL, fork_thread, &bad2) == 0, "pthread_create");
		bad = fork_and_check(l, "fork during the restore");
		if (round == 2)
			pthread_join(th, NULL);
		CHECK(bad == 0, "round %d: the child forked during the lazy restore (done: %d) saw %u of %u pages "
		      "differ from the snapshot", round, done_before, bad, PAGES);
		CHECK(bad2 == 0, "round %d: a child forked from a second thread saw %u bad pages", round, bad2);

		CHECK_RC(bgsnap_lazy_wait(l), 0, "lazy wait: %s", bgsnap_lazy_errmsg(l));
		CHECK(bad_pages() == 0, "round %d: the parent's memory differs from the snapshot", round);
		CHECK(fork_and_check(NULL, "fork after the restore") == 0, "round %d: fork after the restore", round);
		printf("    round %d: fork with the restore %s: the child saw every page\n", round,
		       done_before ? "already complete" : "running");
		bgsnap_lazy_free(l);
		bgsnap_reader_close(r);
		munmap(g_dst, (size_t)PAGES * TU_PAGE);
	}
	corrupt_case(path);
	unlink(path);
	fg_free(&g_s);
	printf("t_restore_lazy_fork: ok\n");
	return 0;
}
