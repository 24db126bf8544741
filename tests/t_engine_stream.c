/*
 * t_engine_stream.c - a snapshot streamed with bgsnap_start_fd, read back
 * while it is written, for every method: through a pipe and through a
 * stream socket with bgsnap_reader_open_stream + bgsnap_reader_next (every
 * page exactly once, content equal to the pause-instant copy taken in
 * save_state while writer threads keep writing, the state blob present
 * after END), and into a regular file that the random-access reader then
 * opens and verifies.
 * tags: concurrency
 * timeout: 600
 */
#include <sys/socket.h>

#include "snaptest.h"

#define MEM (8u << 20)

static void in_save(struct st_host *h, bgsnap_state *st)
{
	(void)h;
	if (bgsnap_state_add(st, "host", "stream-state", 12) != 0)
		FAIL("state_add failed");
}

struct rd_arg {
	int fd;
	const uint8_t *want;   /* filled by save_state before the data comes */
	_Atomic int *ready;    /* ...which says so here (for TSan: the pipe
	                          alone is not seen as ordering it)          */
	int rc;
	char why[600];
};

#define RFAIL(...) do { snprintf(a->why, sizeof(a->why), __VA_ARGS__); a->rc = 1; goto out; } while (0)

static void *stream_reader(void *p)
{
	struct rd_arg *a = p;
	bgsnap_reader *rd = NULL;
	char err[512] = "";
	uint8_t *seen = calloc(MEM / TU_PAGE, 1);
	int r = bgsnap_reader_open_stream(&rd, a->fd, err, sizeof(err));
	if (r < 0)
		RFAIL("reader_open_stream: %s: %s", tu_errname(r), err);
	struct bgsnap_region_info ri;
	if ((r = bgsnap_reader_region(rd, 0, &ri, sizeof ri)) < 0 || strcmp(ri.name, "mem") || ri.size != MEM)
		RFAIL("stream region 0: %s name %s size %llu", tu_errname(r), r < 0 ? "?" : ri.name,
		      r < 0 ? 0ull : (unsigned long long)ri.size);
	uint8_t page0[TU_PAGE] = { 0 };
	uint64_t total = 0;
	struct bgsnap_record rec;
	while ((r = bgsnap_reader_next(rd, &rec)) == 1) {
		if (rec.kind == BGSNAP_REC_END)
			break;
		if (rec.kind != BGSNAP_REC_PAGES && rec.kind != BGSNAP_REC_ZERO)
			continue;
		if (rec.region != 0 || rec.first_page + rec.count > MEM / TU_PAGE)
			RFAIL("record at offset %llu: region %u pages %llu+%llu out of range",
			      (unsigned long long)rec.offset, rec.region, (unsigned long long)rec.first_page,
			      (unsigned long long)rec.count);
		for (uint64_t i = 0; i < rec.count; i++) {
			uint64_t pg = rec.first_page + i;
			if (seen[pg]++)
				RFAIL("page %llu appears twice (offset %llu)", (unsigned long long)pg,
				      (unsigned long long)rec.offset);
			while (!atomic_load(a->ready))
				;
			const uint8_t *got = rec.kind == BGSNAP_REC_ZERO ? page0 : (const uint8_t *)rec.data + i * TU_PAGE;
			if (memcmp(got, a->want + pg * TU_PAGE, TU_PAGE) != 0)
				RFAIL("page %llu differs from the pause-instant content (%s record at offset %llu)",
				      (unsigned long long)pg, rec.kind == BGSNAP_REC_ZERO ? "zero" : "data",
				      (unsigned long long)rec.offset);
			total++;
		}
	}
	if (r < 0)
		RFAIL("reader_next: %s: %s", tu_errname(r), bgsnap_reader_errmsg(rd));
	if (total != MEM / TU_PAGE)
		RFAIL("the stream ended after %llu of %u pages", (unsigned long long)total, MEM / TU_PAGE);
	const void *data;
	size_t len;
	if ((r = bgsnap_reader_find_state(rd, "host", &data, &len)) != 0 || len != 12 || memcmp(data, "stream-state", 12))
		RFAIL("state blob 'host' after END: %s, %zu bytes", tu_errname(r), r ? 0 : len);
	if ((r = bgsnap_reader_next(rd, &rec)) != 0)
		RFAIL("reader_next after END returned %d, expected 0", r);
out:
	if (rd)
		bgsnap_reader_close(rd);
	free(seen);
	return NULL;
}

static int run(int method, int kind)
{
	struct st_busy b;
	st_busy_start(&b, method, MEM, 41, 3, 64 * TU_PAGE, true);
	b.h.in_save = in_save;
	bgsnap_engine *e = b.e;
	uint8_t *m = b.mem, *copy = b.copy;

	if (kind == 2) {
		/* A regular file through the fd sink, then random access. */
		char path[600];
		snprintf(path, sizeof(path), "%s/fd.bgs", tu_tmpdir());
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
		tu_phase("start_fd to a regular file");
		CHECK_RC(bgsnap_start_fd(e, fd), 0, "start_fd: %s", bgsnap_errmsg(e));
		tu_phase("wait, fd sink to a regular file");
		CHECK_RC(bgsnap_wait(e), 0, "wait: %s", bgsnap_errmsg(e));
		CHECK(fcntl(fd, F_GETFD) >= 0, "the engine closed the caller's fd");
		close(fd);
		CHECK_FILE_REGION(path, "mem", copy, MEM);
	} else {
		int sv[2];
		tu_stream_pair(sv, kind == 1);
		struct rd_arg a = { .fd = sv[0], .want = copy, .ready = &b.h.copied };
		pthread_t rt;
		CHECK(pthread_create(&rt, NULL, stream_reader, &a) == 0, "pthread_create");
		tu_phase("start_fd to a stream");
		int r = bgsnap_start_fd(e, sv[1]);
		tu_phase("wait, stream sink");
		if (r == 0)
			r = bgsnap_wait(e);
		CHECK_RC(r, 0, "streamed snapshot: %s", bgsnap_errmsg(e));
		CHECK(fcntl(sv[1], F_GETFD) >= 0, "the engine closed the caller's fd");
		/* The engine does not close the fd: the reader sees EOF only now. */
		close(sv[1]);
		tu_phase("joining the stream reader");
		pthread_join(rt, NULL);
		CHECK(a.rc == 0, "stream reader: %s", a.why);
		close(sv[0]);
	}
	CHECK_WRITERS_PROGRESS(&b.w);
	CHECK_WRITABLE("region after a streamed snapshot", m, MEM);
	st_busy_stop(&b);
	return 0;
}

static int case_pipe(void *arg) { return run(*(int *)arg, 0); }
static int case_socket(void *arg) { return run(*(int *)arg, 1); }
static int case_file(void *arg) { return run(*(int *)arg, 2); }

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "pipe", case_pipe, ~0u, 20);
	st_for_each_method(&t, "socket", case_socket, ~0u, 20);
	st_for_each_method(&t, "regular-file-fd", case_file, ~0u, 20);
	tu_tally_exit(&t, "t_engine_stream");
}
