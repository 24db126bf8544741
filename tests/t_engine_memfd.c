/*
 * t_engine_memfd.c - shared memory regions (memfd, i.e. shmem) beside an
 * anonymous one, with writer threads on both, for every method: the
 * snapshot holds each region's pause-instant content.  This matters for
 * fork: a child does not get a copy-on-write view of MAP_SHARED memory, so
 * the method must either protect it some other way or refuse it at start
 * (-ENOTSUP with a message) -- never store content written after the pause.
 * tags: concurrency
 * timeout: 600
 */
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (8u << 20)

struct two {
	struct st_host a, b;
};

static int two_pause(void *ctx)
{
	struct two *t = ctx;
	if (st_pause(&t->a))
		return -1;
	if (st_pause(&t->b)) {
		st_resume(&t->a);
		return -1;
	}
	return 0;
}
static int two_save(bgsnap_state *st, void *ctx)
{
	struct two *t = ctx;
	return st_save(st, &t->a) || st_save(st, &t->b);
}
static void two_resume(void *ctx)
{
	struct two *t = ctx;
	st_resume(&t->a);
	st_resume(&t->b);
}

static int case_memfd(void *arg)
{
	int method = *(int *)arg;
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", tu_tmpdir());
	int fd = memfd_create("t_engine_memfd", MFD_CLOEXEC);
	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(fd, MEM) == 0, "ftruncate: %s", strerror(errno));
	uint8_t *shm = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(shm != MAP_FAILED, "mmap memfd: %s", strerror(errno));
	tu_fill(shm, MEM, 51, 5);
	uint8_t *anon = tu_map_anon(MEM);
	tu_fill(anon, MEM, 52, 5);
	struct tu_writers wa, wb;
	tu_writers_start(&wa, 1, shm, MEM);
	tu_writers_start(&wb, 1, anon, MEM);
	struct two t = {
		.a = { .base = shm, .len = MEM, .w = &wa, .copy = tu_map_anon(MEM) },
		.b = { .base = anon, .len = MEM, .w = &wb, .copy = tu_map_anon(MEM) },
	};
	bgsnap_engine *e = st_engine(method, 16 * TU_PAGE);
	st_add_region(e, "shm", shm, MEM);
	st_add_region(e, "anon", anon, MEM);
	struct bgsnap_hooks hk = { .pause = two_pause, .save_state = two_save, .resume = two_resume, .ctx = &t };
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "set_hooks");

	tu_phase("bgsnap_start with a memfd region");
	int r = bgsnap_start(e, path);
	if (r == -ENOTSUP && method == BGSNAP_METHOD_FORK) {
		printf("    fork refuses shared memory: %s\n", bgsnap_errmsg(e));
		CHECK_ERRMSG(e);
	} else {
		CHECK_RC(r, 0, "start: %s", bgsnap_errmsg(e));
		tu_phase("bgsnap_wait with a memfd region");
		CHECK_RC(bgsnap_wait(e), 0, "wait: %s", bgsnap_errmsg(e));
		CHECK_FILE_REGION(path, "shm", t.a.copy, MEM);
		CHECK_FILE_REGION(path, "anon", t.b.copy, MEM);
	}
	CHECK_WRITERS_PROGRESS(&wa);
	CHECK_WRITERS_PROGRESS(&wb);
	CHECK_WRITABLE("memfd region", shm, MEM);
	CHECK_WRITABLE("anonymous region", anon, MEM);
	bgsnap_destroy(e);
	tu_writers_stop(&wa);
	tu_writers_stop(&wb);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "memfd+anon", case_memfd, ~0u, 20);
	tu_tally_exit(&t, "t_engine_memfd");
}
