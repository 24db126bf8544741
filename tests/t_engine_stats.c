/*
 * t_engine_stats.c - the statistics tell the truth, for every method and
 * for auto: IDLE before the first start; while running, counters only grow
 * and never pass their totals; after a committed snapshot state DONE, error
 * 0, the method that ran (never AUTO), pages_saved == pages_total == the
 * pages of all regions, pages_zero == the zero pages (nothing writes), no
 * faulted pages without writers, bytes_written == the file size, pause <=
 * total, copy-buffer peak <= capacity, and the file's own header agrees.
 * The snapshot is written to a file whose mode is 0600 even under umask 0,
 * and so is every temporary file seen while it is written.
 * tags: concurrency
 * timeout: 600
 */
#include <dirent.h>
#include <sys/stat.h>

#include "snaptest.h"

#define MEM (16u << 20)
#define ZERO_EVERY 4u  /* one page in four is zero */

struct poller {
	bgsnap_engine *e;
	const char *dir;
	atomic_bool stop;
	int bad_mode;             /* a file mode other than 0600 was seen   */
	char bad_name[256];
	int nonmonotone;
	char why[256];
	unsigned long samples;
};

static void *poll_thread(void *p)
{
	struct poller *q = p;
	struct bgsnap_stats prev = { 0 };
	while (!atomic_load(&q->stop)) {
		struct bgsnap_stats s;
		bgsnap_get_stats(q->e, &s, sizeof s);
		q->samples++;
		if (s.state == BGSNAP_STATE_RUNNING && prev.state == BGSNAP_STATE_RUNNING && !q->nonmonotone) {
			if (s.pages_saved < prev.pages_saved || s.bytes_written < prev.bytes_written ||
			    s.pages_zero < prev.pages_zero || s.pages_faulted < prev.pages_faulted) {
				q->nonmonotone = 1;
				snprintf(q->why, sizeof(q->why), "a counter went down while running: saved %llu->%llu bytes %llu->%llu",
				         (unsigned long long)prev.pages_saved, (unsigned long long)s.pages_saved,
				         (unsigned long long)prev.bytes_written, (unsigned long long)s.bytes_written);
			}
			if (s.pages_total && s.pages_saved > s.pages_total) {
				q->nonmonotone = 1;
				snprintf(q->why, sizeof(q->why), "pages_saved %llu > pages_total %llu",
				         (unsigned long long)s.pages_saved, (unsigned long long)s.pages_total);
			}
		}
		prev = s;
		/* Every file in the directory, temporary ones included, is 0600. */
		DIR *d = opendir(q->dir);
		if (d) {
			struct dirent *de;
			while ((de = readdir(d)) != NULL) {
				if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
					continue;
				struct stat sb;
				if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
				    (sb.st_mode & 07777) != 0600 && !q->bad_mode) {
					q->bad_mode = (int)(sb.st_mode & 07777);
					snprintf(q->bad_name, sizeof(q->bad_name), "%s", de->d_name);
				}
			}
			closedir(d);
		}
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int run(int method)
{
	umask(0);
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 31, ZERO_EVERY);
	/* A second, small region: totals are over all regions. */
	uint8_t *m2 = tu_map_anon(8 * TU_PAGE);
	tu_fill(m2, 8 * TU_PAGE, 32, 0);
	const uint64_t pages = MEM / TU_PAGE + 8, zero = MEM / TU_PAGE / ZERO_EVERY;

	bgsnap_engine *e = st_engine(method, 3 * TU_PAGE + 1);
	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(e, &s, sizeof s), 0, "get_stats before start");
	CHECK(s.state == BGSNAP_STATE_IDLE, "state before the first start is %d, not IDLE", s.state);
	st_add_region(e, "mem", m, MEM);
	st_add_region(e, "small", m2, 8 * TU_PAGE);

	struct poller q = { .e = e, .dir = dir };
	pthread_t pt;
	CHECK(pthread_create(&pt, NULL, poll_thread, &q) == 0, "pthread_create");
	st_snapshot_ok(e, path);
	atomic_store(&q.stop, true);
	pthread_join(pt, NULL);
	CHECK(!q.nonmonotone, "statistics while running: %s", q.why);
	CHECK(!q.bad_mode, "file '%s' in the snapshot directory had mode %04o while being written (umask 0), expected 0600",
	      q.bad_name, q.bad_mode);

	CHECK_RC(bgsnap_get_stats(e, &s, sizeof s), 0, "get_stats after wait");
	printf("    method=%s pages %llu saved %llu zero %llu faulted %llu bytes %llu pause %llu us wp %llu us total %llu us "
	       "copybuf %llu/%llu unprotect_calls %llu (%lu samples)\n",
	       bgsnap_method_name(s.method), (unsigned long long)s.pages_total, (unsigned long long)s.pages_saved,
	       (unsigned long long)s.pages_zero, (unsigned long long)s.pages_faulted, (unsigned long long)s.bytes_written,
	       (unsigned long long)s.pause_us, (unsigned long long)s.wp_us, (unsigned long long)s.total_us,
	       (unsigned long long)s.copybuf_peak, (unsigned long long)s.copybuf_capacity,
	       (unsigned long long)s.unprotect_calls, q.samples);
	CHECK(s.state == BGSNAP_STATE_DONE, "state %d, expected DONE", s.state);
	CHECK(s.error == 0, "error %s after success", tu_errname(s.error));
	if (method == BGSNAP_METHOD_AUTO)
		CHECK(s.method > BGSNAP_METHOD_AUTO && s.method < BGSNAP_METHOD_COUNT_, "auto ran method %d", s.method);
	else
		CHECK(s.method == method, "ran method %d (%s), asked for %s", s.method, bgsnap_method_name(s.method),
		      bgsnap_method_name(method));
	CHECK(s.pages_total == pages, "pages_total %llu, regions have %llu", (unsigned long long)s.pages_total,
	      (unsigned long long)pages);
	CHECK(s.pages_saved == s.pages_total, "pages_saved %llu != pages_total %llu", (unsigned long long)s.pages_saved,
	      (unsigned long long)s.pages_total);
	CHECK(s.pages_zero == zero, "pages_zero %llu, the regions hold %llu zero pages", (unsigned long long)s.pages_zero,
	      (unsigned long long)zero);
	CHECK(s.pages_faulted == 0, "pages_faulted %llu although nothing wrote", (unsigned long long)s.pages_faulted);
	struct stat sb;
	CHECK(stat(path, &sb) == 0, "stat: %s", strerror(errno));
	CHECK((uint64_t)sb.st_size == s.bytes_written, "bytes_written %llu, file size %lld",
	      (unsigned long long)s.bytes_written, (long long)sb.st_size);
	CHECK((sb.st_mode & 07777) == 0600, "snapshot file mode %04o under umask 0, expected 0600",
	      (unsigned)(sb.st_mode & 07777));
	CHECK(s.pause_us <= s.total_us, "pause %llu us > total %llu us", (unsigned long long)s.pause_us,
	      (unsigned long long)s.total_us);
	CHECK(s.wp_us <= s.pause_us || s.method == BGSNAP_METHOD_STOP, "write-protect %llu us > pause %llu us",
	      (unsigned long long)s.wp_us, (unsigned long long)s.pause_us);
	CHECK(s.copybuf_capacity == 4 * TU_PAGE || s.method == BGSNAP_METHOD_FORK || s.method == BGSNAP_METHOD_STOP,
	      "copy buffer capacity %llu, asked 3 pages + 1 byte (rounds up to 4 pages)",
	      (unsigned long long)s.copybuf_capacity);
	CHECK(s.copybuf_peak <= s.copybuf_capacity, "copy buffer peak %llu > capacity %llu",
	      (unsigned long long)s.copybuf_peak, (unsigned long long)s.copybuf_capacity);
	CHECK(s.state_bytes == 0, "state_bytes %llu without a save_state hook", (unsigned long long)s.state_bytes);
	CHECK_DIR_COUNT(dir, 1, "only the snapshot should be left");

	char err[512];
	bgsnap_reader *rd;
	CHECK_RC(bgsnap_reader_open(&rd, path, err, sizeof(err)), 0, "reader_open: %s", err);
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(rd, &fi, sizeof fi), 0, "reader_info");
	CHECK(fi.pages_total == s.pages_total && fi.pages_zero == s.pages_zero && fi.region_count == 2 &&
	      fi.method == s.method && fi.file_bytes == (uint64_t)sb.st_size,
	      "file header disagrees with stats: pages %llu zero %llu regions %u method %d bytes %llu",
	      (unsigned long long)fi.pages_total, (unsigned long long)fi.pages_zero, fi.region_count, fi.method,
	      (unsigned long long)fi.file_bytes);
	bgsnap_reader_close(rd);
	CHECK_FILE_REGION(path, "small", m2, 8 * TU_PAGE);
	bgsnap_destroy(e);
	return 0;
}

static int case_stats(void *arg) { return run(*(int *)arg); }

static int case_auto(void *arg)
{
	(void)arg;
	return run(BGSNAP_METHOD_AUTO);
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "stats", case_stats, ~0u, 20);
	tu_tally_add(&t, tu_run_case("stats/auto", case_auto, NULL, 20));
	tu_tally_exit(&t, "t_engine_stats");
}
