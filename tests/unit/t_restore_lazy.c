/*
 * t_restore_lazy - lazy restore (userfaultfd missing faults + prefetch):
 *  - pages read and written by several threads while the prefetch runs hold
 *    the snapshot's bytes (or what the host wrote after); every page is
 *    installed exactly once (demand + prefetched == total);
 *  - targets that are populated, file-backed private or of the wrong size
 *    are refused;
 *  - a corrupt record, a file truncated under the reader, and a free before
 *    the end never hang and never read as zeros: each page afterwards holds
 *    the snapshot's bytes or raises SIGBUS (poisoned; SIGSEGV where the
 *    kernel has no UFFDIO_POISON), and the failure is reported.
 * tags: concurrency
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "testutil.h"

static char g_path[512];
static struct fg_spec g_s;

static uint8_t *fresh(size_t len)
{
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static bgsnap_reader *open_r(const char *path)
{
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open %s: %s", path, err);
	return r;
}

static void targets(struct bgsnap_restore_target *t, const struct fg_spec *s)
{
	for (unsigned i = 0; i < s->nregions; i++)
		t[i] = (struct bgsnap_restore_target){ i, fresh(s->pages[i] * TU_PAGE), s->pages[i] * TU_PAGE };
}

/* Starts a lazy restore of every region of `r` into fresh targets `t`. */
static bgsnap_lazy *start_all(bgsnap_reader *r, struct bgsnap_restore_target *t)
{
	targets(t, &g_s);
	bgsnap_lazy *l;
	char err[600];
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, t, g_s.nregions, err, sizeof(err)), 0, "start: %s", err);
	return l;
}

static void print_stats(const char *what, const struct bgsnap_lazy_stats *st)
{
	printf("%s: usable %llu us, total %llu us, %llu pages: %llu on demand, %llu prefetched, %llu zero, "
	       "%llu failed, %llu faults\n", what, (unsigned long long)st->usable_us,
	       (unsigned long long)st->total_us, (unsigned long long)st->pages_total,
	       (unsigned long long)st->pages_demand, (unsigned long long)st->pages_prefetched,
	       (unsigned long long)st->pages_zero, (unsigned long long)st->pages_failed,
	       (unsigned long long)st->faults);
}

/* ---- readers racing the prefetch ---- */

struct toucher {
	pthread_t th;
	const uint8_t *dst, *want;
	uint64_t pages, seed;
	int write;
	uint64_t bad;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t x = t->seed | 1;
	for (uint64_t k = 0; k < t->pages; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t p = x % t->pages;
		if (memcmp(t->dst + p * TU_PAGE, t->want + p * TU_PAGE, TU_PAGE) && !t->write)
			t->bad++;
	}
	return NULL;
}

static int case_basic(void *arg)
{
	(void)arg;
	bgsnap_reader *r = open_r(g_path);
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	bgsnap_lazy *l = start_all(r, t);
	/* The host writes a page at once: the snapshot page arrives first, then
	 * the write lands on it. */
	uint8_t *w = t[2].dst;
	w[7 * TU_PAGE + 1] = 0x77;
	struct toucher th[4];
	for (unsigned i = 0; i < 4; i++) {
		unsigned g = i % g_s.nregions == 0 ? 2 : i % g_s.nregions;
		th[i] = (struct toucher){ .dst = t[g].dst, .want = g_s.mem[g], .pages = g_s.pages[g],
		                          .seed = 0x9e3779b97f4a7c15ull * (i + 1), .write = g == 2 };
		CHECK(pthread_create(&th[i].th, NULL, touch_main, &th[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i].th, NULL);
		CHECK(th[i].bad == 0, "toucher %u saw %llu pages differ from the snapshot", i,
		      (unsigned long long)th[i].bad);
	}
	CHECK_RC(bgsnap_lazy_wait(l), 0, "wait: %s", bgsnap_lazy_errmsg(l));
	struct bgsnap_lazy_stats st;
	CHECK_RC(bgsnap_lazy_get_stats(l, &st, sizeof st), 0, "stats");
	print_stats("basic", &st);
	uint64_t total = 0;
	for (unsigned i = 0; i < g_s.nregions; i++)
		total += g_s.pages[i];
	CHECK(st.done == 1 && st.error == 0 && st.pages_failed == 0, "done %d error %d failed %llu", st.done,
	      st.error, (unsigned long long)st.pages_failed);
	CHECK(st.pages_total == total && st.pages_demand + st.pages_prefetched == total,
	      "pages: total %llu, demand %llu + prefetched %llu: every page must be installed exactly once",
	      (unsigned long long)st.pages_total, (unsigned long long)st.pages_demand,
	      (unsigned long long)st.pages_prefetched);
	CHECK(st.faults >= 1 && st.pages_demand >= 1, "the host's first write was not served as a fault");
	CHECK(w[7 * TU_PAGE + 1] == 0x77, "the host's write was lost");
	w[7 * TU_PAGE + 1] = g_s.mem[2][7 * TU_PAGE + 1];
	for (unsigned i = 0; i < g_s.nregions; i++)
		CHECK(!memcmp(t[i].dst, g_s.mem[i], g_s.pages[i] * TU_PAGE), "region %u differs after wait", i);
	bgsnap_lazy_free(l);
	/* After free the memory is plain memory again. */
	memset(t[0].dst, 1, TU_PAGE);
	bgsnap_reader_close(r);
	return 0;
}

/* ---- refused targets ---- */

static int case_refuse(void *arg)
{
	(void)arg;
	bgsnap_reader *r = open_r(g_path);
	bgsnap_lazy *l = (bgsnap_lazy *)1;
	char err[600];
	size_t len = g_s.pages[1] * TU_PAGE;
	uint8_t *p = fresh(len);
	p[3 * TU_PAGE] = 1;   /* one populated page */
	struct bgsnap_restore_target t = { 1, p, len };
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), -EINVAL, "populated target");
	CHECK(l == NULL, "*out not NULL on failure");
	printf("populated: %s\n", err);
	CHECK(strstr(err, "populated"), "message does not say why: %s", err);
	int mfd = memfd_create("lazy", MFD_CLOEXEC);
	CHECK(mfd >= 0 && ftruncate(mfd, (off_t)len) == 0, "memfd");
	/* Shared memfd targets are restored (t_restore_lazy_shared); a
	 * private mapping of a file is not. */
	t.dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	CHECK(t.dst != MAP_FAILED, "mmap");
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), -ENOTSUP, "private file mapping");
	printf("private file mapping: %s\n", err);
	t = (struct bgsnap_restore_target){ 1, fresh(len), len - TU_PAGE };
	CHECK_RC(bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err)), -EINVAL, "short target");
	/* The refused fresh target is not registered: it is plain memory. */
	memset(t.dst, 3, len);
	bgsnap_reader_close(r);
	return 0;
}

/* ---- failures: every page is the snapshot's or faults loudly ---- */

/* Counts the pages of t that read as the snapshot (ok) and that raise a
 * signal (poisoned); fails on a page that reads anything else. */
static void classify(const struct bgsnap_restore_target *t, const uint8_t *want, uint64_t *ok, uint64_t *poisoned,
                     int *sig)
{
	for (uint64_t p = 0; p < t->len / TU_PAGE; p++) {
		const uint8_t *d = (const uint8_t *)t->dst + p * TU_PAGE;
		int s = tu_read_signal(d);
		if (s) {
			(*poisoned)++;
			*sig = s;
			continue;
		}
		CHECK(!memcmp(d, want + p * TU_PAGE, TU_PAGE),
		      "page %llu is readable but is not the snapshot's content (silent corruption)",
		      (unsigned long long)p);
		(*ok)++;
	}
}

/* A PAGES record of region 2: its file offset and page range. */
static void find_pages_record(const char *path, uint64_t *off, uint64_t *first, uint64_t *count)
{
	bgsnap_reader *r = open_r(path);
	struct bgsnap_record rec;
	int rc;
	*count = 0;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0)
		if (rec.kind == BGSNAP_REC_PAGES && rec.region == 2 && rec.count >= 2 && !*count) {
			*off = rec.offset;
			*first = rec.first_page;
			*count = rec.count;
		}
	CHECK(rc == 0 && *count, "no PAGES record found");
	bgsnap_reader_close(r);
}

/* A copy of the test's file as `name` (path[600] receives its path, *len
 * its size), with the byte at `flip` changed unless flip is 0, opened. */
static bgsnap_reader *open_copy(const char *name, char *path, size_t *len, uint64_t flip)
{
	snprintf(path, 600, "%s/%s", tu_tmpdir(), name);
	uint8_t *b = fg_read_file(g_path, len);
	if (flip)
		b[flip] ^= 0x40;
	fg_write_file(path, b, *len);
	free(b);
	return open_r(path);
}

static int case_corrupt(void *arg)
{
	(void)arg;
	uint64_t off = 0, first = 0, count = 0;
	find_pages_record(g_path, &off, &first, &count);
	char path[600];
	size_t len;
	/* A byte of page data: the record's crc no longer matches. */
	bgsnap_reader *r = open_copy("corrupt.bgs", path, &len, off + 16 + 24 + 100);
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	bgsnap_lazy *l = start_all(r, t);
	int rc = bgsnap_lazy_wait(l);
	struct bgsnap_lazy_stats st;
	bgsnap_lazy_get_stats(l, &st, sizeof st);
	print_stats("corrupt record", &st);
	printf("wait: %s: %s\n", tu_errname(rc), bgsnap_lazy_errmsg(l));
	CHECK_RC(rc, -EBADMSG, "wait on a file with a corrupt record");
	CHECK(strstr(bgsnap_lazy_errmsg(l), "checksum"), "message: %s", bgsnap_lazy_errmsg(l));
	CHECK(st.pages_failed == count, "%llu pages failed, the corrupt record holds %llu",
	      (unsigned long long)st.pages_failed, (unsigned long long)count);
	uint64_t ok = 0, poisoned = 0;
	int sig = 0;
	for (unsigned i = 0; i < g_s.nregions; i++)
		classify(&t[i], g_s.mem[i], &ok, &poisoned, &sig);
	printf("corrupt record: %llu pages restored, %llu raise %s\n", (unsigned long long)ok,
	       (unsigned long long)poisoned, sig == SIGBUS ? "SIGBUS" : sig == SIGSEGV ? "SIGSEGV" : "-");
	CHECK(poisoned == count, "%llu pages fault, %llu expected", (unsigned long long)poisoned,
	      (unsigned long long)count);
	bgsnap_lazy_free(l);
	bgsnap_reader_close(r);
	return 0;
}

static int case_truncated(void *arg)
{
	(void)arg;
	char path[600];
	size_t len;
	bgsnap_reader *r = open_copy("trunc.bgs", path, &len, 0);
	/* The file shrinks under an open reader: page reads now fail. */
	CHECK(truncate(path, (off_t)(len / 3)) == 0, "truncate: %s", strerror(errno));
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	bgsnap_lazy *l = start_all(r, t);
	/* Touch a page of the last region at once: it must not hang. */
	uint64_t ok = 0, poisoned = 0;
	int sig = 0;
	classify(&t[2], g_s.mem[2], &ok, &poisoned, &sig);
	int rc = bgsnap_lazy_wait(l);
	struct bgsnap_lazy_stats st;
	bgsnap_lazy_get_stats(l, &st, sizeof st);
	print_stats("truncated", &st);
	printf("wait: %s: %s\n", tu_errname(rc), bgsnap_lazy_errmsg(l));
	CHECK(rc < 0 && st.error == rc, "wait returned %s on a truncated file", tu_errname(rc));
	CHECK(st.pages_failed > 0, "no page failed");
	for (unsigned i = 0; i < 2; i++)
		classify(&t[i], g_s.mem[i], &ok, &poisoned, &sig);
	printf("truncated: %llu pages restored, %llu raise a signal\n", (unsigned long long)ok,
	       (unsigned long long)poisoned);
	CHECK(poisoned > 0 && poisoned == st.pages_failed, "%llu pages fault, %llu failed", (unsigned long long)poisoned,
	      (unsigned long long)st.pages_failed);
	bgsnap_lazy_free(l);
	bgsnap_reader_close(r);
	return 0;
}

static int case_free_early(void *arg)
{
	(void)arg;
	bgsnap_reader *r = open_r(g_path);
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	bgsnap_lazy *l = start_all(r, t);
	bgsnap_lazy_free(l);
	uint64_t ok = 0, poisoned = 0;
	int sig = 0;
	for (unsigned i = 0; i < g_s.nregions; i++)
		classify(&t[i], g_s.mem[i], &ok, &poisoned, &sig);
	printf("free before the end: %llu pages restored, %llu raise a signal\n", (unsigned long long)ok,
	       (unsigned long long)poisoned);
	bgsnap_reader_close(r);
	return 0;
}

int main(void)
{
	fg_default(&g_s);
	g_s.pages[2] = 4000;
	fg_build(&g_s);
	snprintf(g_path, sizeof(g_path), "%s/l.bgs", tu_tmpdir());
	fg_write_path(&g_s, g_path);
	char why[256];
	if (bgsnap_method_probe(BGSNAP_METHOD_UFFD, why, sizeof(why)) < 0)
		SKIP("userfaultfd is not usable here: %s", why);
	struct tu_tally tally = { 0 };
	tu_tally_add(&tally, tu_run_case("basic", case_basic, NULL, 60));
	tu_tally_add(&tally, tu_run_case("refuse", case_refuse, NULL, 60));
	tu_tally_add(&tally, tu_run_case("corrupt", case_corrupt, NULL, 60));
	tu_tally_add(&tally, tu_run_case("truncated", case_truncated, NULL, 60));
	tu_tally_add(&tally, tu_run_case("free_early", case_free_early, NULL, 60));
	fg_free(&g_s);
	tu_tally_exit(&tally, "lazy restore");
}
