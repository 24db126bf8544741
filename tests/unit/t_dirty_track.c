/*
 * t_dirty_track - the write tracker between snapshots reports exactly the
 * pages written since its last scan: none when nothing was written, each
 * written page once (also when the output vector fills and the scan
 * resumes), a page discarded with MADV_DONTNEED (its content changed to
 * zero), and every page of a transparent huge page written in part.
 * A region unmapped and mapped again fails the scan (-EPERM) instead of
 * reporting nothing.  Skips on kernels without UFFD_FEATURE_WP_ASYNC.
 * Prints (asserts nothing about) the host's first write to a tracked page
 * against a first write to a discarded page of an untracked mapping, and,
 * for comparison, a first write to a page under a synchronous
 * write-protect userfaultfd whose handler thread only marks and
 * unprotects it (what tracking with the uffd method's own registration
 * would cost), and a first write to a tracked page a fork child still
 * shares (the host during a fork snapshot of a chain).
 *
 * timeout: 60
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/dirty.h"
#include "os/uffd_sys.h"
#include "testutil.h"
#include "util/clock.h"

#define PAGES 4096u   /* 16 MiB */

static struct region rg;

static uint64_t count_bits(const struct dirty_tracker *d)
{
	uint64_t n = 0;
	for (uint64_t p = 0; p < rg.pages; p++)
		n += dirty_test(d, 0, p);
	return n;
}

static void scan_ok(struct dirty_tracker *d, const char *when)
{
	struct bgsnap_err err = { 0 };
	CHECK_RC(dirty_scan(d, &rg, 1, &err), 0, "scan %s: %s", when, err.msg);
	CHECK(count_bits(d) == d->dirty_pages, "scan %s: %llu bits but dirty_pages %llu", when,
	      (unsigned long long)count_bits(d), (unsigned long long)d->dirty_pages);
}

/* ns per page of a first write to each of `pages` pages. */
static double first_writes(uint8_t *m, uint64_t pages)
{
	uint64_t t0 = now_ns();
	for (uint64_t p = 0; p < pages; p++)
		m[p * TU_PAGE] = 1;
	return (double)(now_ns() - t0) / (double)pages;
}

/* The host's cost of tracking: a first write to an armed page against a
 * first write to a discarded page nobody tracks (a fresh zero page). */
static void first_write_cost(void)
{
	struct bgsnap_err err = { 0 };
	uint8_t *a = tu_map_anon(PAGES * TU_PAGE), *b = tu_map_anon(PAGES * TU_PAGE);
	memset(a, 2, PAGES * TU_PAGE);
	memset(b, 2, PAGES * TU_PAGE);
	struct region r2 = { .addr = a, .len = PAGES * TU_PAGE, .pages = PAGES };
	strcpy(r2.name, "a");
	struct dirty_tracker d;
	CHECK_RC(dirty_open(&d, &r2, 1, &err), 0, "open: %s", err.msg);
	CHECK_RC(dirty_scan(&d, &r2, 1, &err), 0, "arm: %s", err.msg);
	CHECK(madvise(b, PAGES * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
	double tracked = first_writes(a, PAGES), untracked = first_writes(b, PAGES);
	printf("first write: tracked %.0f ns/page, untracked after MADV_DONTNEED %.0f ns/page, ratio %.2f\n",
	       tracked, untracked, tracked / untracked);
	CHECK_RC(dirty_scan(&d, &r2, 1, &err), 0, "scan: %s", err.msg);
	CHECK(d.dirty_pages == PAGES, "%llu of %u written pages reported", (unsigned long long)d.dirty_pages, PAGES);

	/* Tracked pages shared with a fork child that is still alive: the
	 * write clears the protection bit and copies the page. */
	int hold[2];
	CHECK(pipe(hold) == 0, "pipe");
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		char c;
		close(hold[1]);
		while (read(hold[0], &c, 1) < 0)
			;
		_exit(0);
	}
	close(hold[0]);
	double shared = first_writes(a, PAGES);
	close(hold[1]);
	CHECK(waitpid(pid, NULL, 0) == pid, "waitpid");
	CHECK(madvise(b, PAGES * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
	untracked = first_writes(b, PAGES);
	printf("first write: tracked and shared with a fork child %.0f ns/page, untracked %.0f ns/page, "
	       "ratio %.2f\n", shared, untracked, shared / untracked);
	CHECK_RC(dirty_scan(&d, &r2, 1, &err), 0, "scan: %s", err.msg);
	CHECK(d.dirty_pages == PAGES, "%llu of %u pages written while a fork child shared them reported",
	      (unsigned long long)d.dirty_pages, PAGES);
	dirty_close(&d, &r2, 1);
}

struct sync_wp {
	int fd;
	uint64_t handled;
};

/* A synchronous tracker's handler: marks (counts) and unprotects each
 * faulting page, which wakes the faulting thread. */
static void *sync_wp_main(void *arg)
{
	struct sync_wp *w = arg;
	struct uffd_msg msg[64];
	while (w->handled < PAGES) {
		struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		ssize_t n = read(w->fd, msg, sizeof(msg));
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t pg = msg[i].arg.pagefault.address & ~(uint64_t)(TU_PAGE - 1);
			if (uffd_wp(w->fd, pg, TU_PAGE, 0, 0, 1000) == 0)
				w->handled++;
		}
	}
	return NULL;
}

static void sync_first_write_cost(void)
{
	struct bgsnap_err err = { 0 };
	uint64_t got = 0;
	int fd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, UFFD_FEATURE_PAGEFAULT_FLAG_WP, &got, &err);
	if (fd < 0) {
		printf("first write under a synchronous write-protect: not measured (%s)\n", err.msg);
		return;
	}
	uint8_t *c = tu_map_anon(PAGES * TU_PAGE), *b = tu_map_anon(PAGES * TU_PAGE);
	memset(c, 2, PAGES * TU_PAGE);
	memset(b, 2, PAGES * TU_PAGE);
	struct uffdio_register reg = { .range = { .start = (uint64_t)(uintptr_t)c, .len = PAGES * TU_PAGE },
	                               .mode = UFFDIO_REGISTER_MODE_WP };
	CHECK(ioctl(fd, UFFDIO_REGISTER, &reg) == 0, "UFFDIO_REGISTER: %s", strerror(errno));
	CHECK_RC(uffd_wp(fd, (uint64_t)(uintptr_t)c, PAGES * TU_PAGE, 1, 0, 1000), 0, "write-protect");
	struct sync_wp w = { .fd = fd };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, sync_wp_main, &w) == 0, "pthread_create");
	CHECK(madvise(b, PAGES * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
	double tracked = first_writes(c, PAGES), untracked = first_writes(b, PAGES);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	printf("first write: synchronous write-protect (handler thread marks and unprotects) %.0f ns/page, "
	       "untracked %.0f ns/page, ratio %.2f\n", tracked, untracked, tracked / untracked);
	CHECK(w.handled == PAGES, "the handler served %llu of %u first writes", (unsigned long long)w.handled,
	      PAGES);
	close(fd);
	munmap(c, PAGES * TU_PAGE);
	munmap(b, PAGES * TU_PAGE);
}

int main(void)
{
	struct bgsnap_err err = { 0 };
	if (dirty_probe(&err))
		SKIP("%s", err.msg);
	uint8_t *m = mmap(NULL, PAGES * TU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap");
	memset(m, 1, PAGES * TU_PAGE / 2);   /* half populated, half never touched */
	strcpy(rg.name, "r");
	rg.addr = m;
	rg.len = PAGES * TU_PAGE;
	rg.pages = PAGES;
	struct dirty_tracker d;
	CHECK_RC(dirty_open(&d, &rg, 1, &err), 0, "open: %s", err.msg);
	scan_ok(&d, "arming");
	scan_ok(&d, "after nothing was written");
	CHECK(d.dirty_pages == 0, "%llu pages reported with nothing written", (unsigned long long)d.dirty_pages);

	/* Every other page: more runs than the output vector holds. */
	for (uint32_t p = 0; p < PAGES; p += 2)
		m[(uint64_t)p * TU_PAGE + 7] = 9;
	scan_ok(&d, "after writing every other page");
	for (uint32_t p = 0; p < PAGES; p++)
		CHECK(dirty_test(&d, 0, p) == !(p % 2), "page %u reported %d", p, dirty_test(&d, 0, p));
	scan_ok(&d, "after the re-arm");
	CHECK(d.dirty_pages == 0, "the scan did not re-arm: %llu pages", (unsigned long long)d.dirty_pages);

	/* Discarded pages (populated and never touched alike) read as zero now. */
	CHECK(madvise(m + 100 * TU_PAGE, 10 * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
	CHECK(madvise(m + 3000 * TU_PAGE, 4 * TU_PAGE, MADV_DONTNEED) == 0, "madvise");
	scan_ok(&d, "after MADV_DONTNEED");
	for (uint32_t p = 0; p < PAGES; p++) {
		int want = (p >= 100 && p < 110) || (p >= 3000 && p < 3004);
		CHECK(dirty_test(&d, 0, p) == want, "after MADV_DONTNEED page %u reported %d", p,
		      dirty_test(&d, 0, p));
	}
	/* Read faults on discarded pages are no writes. */
	volatile uint8_t sink = m[101 * TU_PAGE];
	(void)sink;
	scan_ok(&d, "after a read");
	CHECK(d.dirty_pages == 0, "%llu pages reported after reads only", (unsigned long long)d.dirty_pages);
	dirty_close(&d, &rg, 1);

	/* Remapped: the new mapping is not tracked, the scan must say so. */
	CHECK_RC(dirty_open(&d, &rg, 1, &err), 0, "open: %s", err.msg);
	scan_ok(&d, "arming again");
	CHECK(mmap(m, PAGES * TU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == m,
	      "mmap fixed");
	m[5] = 1;
	memset(&err, 0, sizeof(err));
	CHECK_RC(dirty_scan(&d, &rg, 1, &err), -EPERM, "scan after a remap: %s", err.msg);
	dirty_close(&d, &rg, 1);
	munmap(m, PAGES * TU_PAGE);

	/* A transparent huge page written in one byte. */
	size_t hl = 8u << 20;
	uint8_t *raw = mmap(NULL, hl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(raw != MAP_FAILED, "mmap");
	uint8_t *h = (uint8_t *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
	(void)madvise(h, 4u << 20, MADV_HUGEPAGE);
	memset(h, 3, 4u << 20);
	rg.addr = h;
	rg.len = 4u << 20;
	rg.pages = rg.len / TU_PAGE;
	CHECK_RC(dirty_open(&d, &rg, 1, &err), 0, "open: %s", err.msg);
	scan_ok(&d, "arming huge");
	scan_ok(&d, "huge, nothing written");
	CHECK(d.dirty_pages == 0, "%llu huge pages reported with nothing written", (unsigned long long)d.dirty_pages);
	h[(2u << 20) + 5 * TU_PAGE + 1] = 4;
	scan_ok(&d, "huge, one byte written");
	CHECK(dirty_test(&d, 0, 512 + 5), "the written page of the huge page is not reported");
	CHECK(d.dirty_pages >= 1 && d.dirty_pages <= 512, "%llu pages reported for one write in a huge page",
	      (unsigned long long)d.dirty_pages);
	dirty_close(&d, &rg, 1);
	munmap(raw, hl);
	first_write_cost();
	sync_first_write_cost();
	printf("ok\n");
	return 0;
}
