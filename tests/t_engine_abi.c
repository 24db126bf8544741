/*
 * t_engine_abi.c - the public structs can grow without breaking callers:
 *  - bgsnap_create reads only opts->size bytes: the first version's size
 *    works (and its fields are honoured), a size below it or 0 is -EINVAL,
 *    a larger struct is accepted only when the unknown tail is all zero;
 *  - bgsnap_get_stats / bgsnap_lazy_get_stats copy what the caller's size
 *    holds: a smaller struct's neighbours are left alone, a larger one's
 *    tail is zeroed;
 *  - the experimental parameters: defaults, range checks, -EBUSY during a
 *    snapshot, unknown ones refused;
 *  - bgsnap_version() is the header's version.
 */
#include <stddef.h>
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (256u << 10)
#define STR_(x) #x
#define STR(x) STR_(x)

/* The first version of struct bgsnap_options ended with log_ctx. */
#define OPTIONS_SIZE_FIRST (offsetof(struct bgsnap_options, log_ctx) + sizeof(void *))

/* A caller whose struct is larger than the library's: unknown fields last. */
struct options_newer {
	struct bgsnap_options o;
	uint64_t future[4];
};

static int param_in_pause_rc;

static int pause_sets_param(void *ctx)
{
	param_in_pause_rc = bgsnap_set_param(ctx, BGSNAP_PARAM_FAULT_AROUND_PAGES, 4);
	return 0;
}

static void check_options(void)
{
	struct bgsnap_options o;
	memset(&o, 0x5a, sizeof(o));
	bgsnap_options_init(&o);
	CHECK(o.size == sizeof(o), "bgsnap_options_init set size %u, not sizeof %zu", o.size, sizeof(o));

	bgsnap_engine *e = NULL;
	o.size = 0;
	CHECK_RC(bgsnap_create(&e, &o), -EINVAL, "options with size 0 (not from bgsnap_options_init)");
	CHECK(e == NULL, "a refused create left *out set");
	o.size = (uint32_t)OPTIONS_SIZE_FIRST - 1;
	CHECK_RC(bgsnap_create(&e, &o), -EINVAL, "options one byte smaller than the first version");

	/* A newer caller: a zero tail means "the defaults", anything else is a
	 * setting this library cannot honour. */
	struct options_newer n;
	memset(&n, 0, sizeof(n));
	bgsnap_options_init(&n.o);
	n.o.size = sizeof(n);
	CHECK_RC(bgsnap_create(&e, &n.o), 0, "a larger options struct with an all-zero tail");
	bgsnap_destroy(e);
	e = NULL;
	n.future[3] = 1;
	CHECK_RC(bgsnap_create(&e, &n.o), -EINVAL, "a larger options struct with a non-zero tail");

	/* An older caller: exactly the first version's bytes, in a buffer that
	 * ends there (ASan would see a read past it).  Its method is used. */
	unsigned char *old = malloc(OPTIONS_SIZE_FIRST);
	CHECK(old != NULL, "out of memory");
	bgsnap_options_init(&o);
	o.method = BGSNAP_METHOD_STOP;
	o.size = (uint32_t)OPTIONS_SIZE_FIRST;
	memcpy(old, &o, OPTIONS_SIZE_FIRST);
	CHECK_RC(bgsnap_create(&e, (const struct bgsnap_options *)old), 0, "options of the first version's size");
	free(old);
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 3, 4);
	st_add_region(e, "mem", m, MEM);
	struct bgsnap_hooks hk = { .pause = pause_sets_param, .ctx = e };
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "set_hooks");
	char path[600];
	snprintf(path, sizeof(path), "%s/old.bgs", tu_tmpdir());
	st_snapshot_ok(e, path);
	CHECK_RC(param_in_pause_rc, -EBUSY, "bgsnap_set_param from the pause hook (a snapshot is starting)");
	struct bgsnap_stats s;
	CHECK_RC(bgsnap_get_stats(e, &s, sizeof s), 0, "get_stats");
	CHECK(s.method == BGSNAP_METHOD_STOP, "the old-size options asked for stop, the run used %s",
	      bgsnap_method_name(s.method));
	CHECK_FILE_REGION(path, "mem", m, MEM);

	/* Stats into a struct smaller than the library's: its first fields, and
	 * not a byte beyond. */
	union { struct bgsnap_stats s; unsigned char b[sizeof(struct bgsnap_stats) + 32]; } u;
	size_t small = offsetof(struct bgsnap_stats, pages_total) + sizeof(uint64_t);
	memset(&u, 0xaa, sizeof(u));
	CHECK_RC(bgsnap_get_stats(e, &u.s, small), 0, "get_stats into a smaller struct");
	CHECK(u.s.state == BGSNAP_STATE_DONE && u.s.pages_total == MEM / TU_PAGE,
	      "smaller struct: state %d pages_total %llu", u.s.state, (unsigned long long)u.s.pages_total);
	for (size_t i = small; i < sizeof(u); i++)
		CHECK(u.b[i] == 0xaa, "get_stats with size %zu wrote byte %zu", small, i);
	/* ... and into a larger one: the fields it does not know are zero. */
	memset(&u, 0xaa, sizeof(u));
	CHECK_RC(bgsnap_get_stats(e, &u.s, sizeof(u)), 0, "get_stats into a larger struct");
	CHECK(u.s.pages_total == MEM / TU_PAGE, "larger struct: pages_total %llu",
	      (unsigned long long)u.s.pages_total);
	for (size_t i = sizeof(struct bgsnap_stats); i < sizeof(u); i++)
		CHECK(u.b[i] == 0, "get_stats with size %zu left byte %zu of the caller's tail unzeroed",
		      sizeof(u), i);
	CHECK_RC(bgsnap_get_stats(e, NULL, sizeof s), -EINVAL, "get_stats into NULL");
	bgsnap_destroy(e);
	munmap(m, MEM);
}

static void check_params(void)
{
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_AUTO, 0);
	int64_t v = -1;
	CHECK_RC(bgsnap_get_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, &v), 0, "get fault-around");
	CHECK(v == 1, "default fault-around is %lld, not 1 (the faulting page only)", (long long)v);
	CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, 16), 0, "fault-around 16");
	CHECK_RC(bgsnap_get_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, &v), 0, "get fault-around");
	CHECK(v == 16, "fault-around reads back %lld after setting 16", (long long)v);
	CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, 0), 0, "fault-around 0 (= 1)");
	CHECK_RC(bgsnap_get_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, &v), 0, "get fault-around");
	CHECK(v == 1, "fault-around 0 reads back %lld, not 1", (long long)v);
	CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, 64), 0, "fault-around 64");
	static const int64_t bad[] = { 3, 65, 128, -1, -64, (int64_t)1 << 40 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, bad[i]), -EINVAL,
		         "fault-around %lld", (long long)bad[i]);
		CHECK_ERRMSG(e);
	}
	CHECK_RC(bgsnap_get_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, &v), 0, "get fault-around");
	CHECK(v == 64, "refused values changed fault-around to %lld", (long long)v);
	CHECK_RC(bgsnap_get_param(e, BGSNAP_PARAM_FINISH_PAUSED, &v), 0, "get finish-paused");
	CHECK(v == BGSNAP_FINISH_PAUSED_DEFAULT, "default finish-paused is %lld, not %d", (long long)v,
	      BGSNAP_FINISH_PAUSED_DEFAULT);
	static const int64_t fin_bad[] = { -2, 100001, INT64_MIN };
	for (size_t i = 0; i < sizeof(fin_bad) / sizeof(fin_bad[0]); i++) {
		CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FINISH_PAUSED, fin_bad[i]), -EINVAL, "finish-paused %lld",
		         (long long)fin_bad[i]);
		CHECK_ERRMSG(e);
	}
	static const int64_t fin_good[] = { -1, 0, 1, 250, 100000 };
	for (size_t i = 0; i < sizeof(fin_good) / sizeof(fin_good[0]); i++) {
		CHECK_RC(bgsnap_set_param(e, BGSNAP_PARAM_FINISH_PAUSED, fin_good[i]), 0, "finish-paused %lld",
		         (long long)fin_good[i]);
		CHECK_RC(bgsnap_get_param(e, BGSNAP_PARAM_FINISH_PAUSED, &v), 0, "get finish-paused");
		CHECK(v == fin_good[i], "finish-paused reads back %lld after %lld", (long long)v, (long long)fin_good[i]);
	}
	CHECK_RC(bgsnap_set_param(e, 0, 1), -EINVAL, "parameter 0");
	CHECK_RC(bgsnap_set_param(e, 9999, 1), -EINVAL, "parameter 9999");
	CHECK_RC(bgsnap_get_param(e, 9999, &v), -EINVAL, "get parameter 9999");
	CHECK_RC(bgsnap_set_param(NULL, BGSNAP_PARAM_FAULT_AROUND_PAGES, 1), -EINVAL, "no engine");
	bgsnap_destroy(e);
}

/* Lazy stats take the caller's size like the engine's. */
static void check_lazy_stats(void)
{
	struct st_lazy z;
	if (st_lazy_start(&z, "lazy.bgs", MEM, 9) < 0) {
		printf("lazy stats not checked: lazy restore cannot run here: %s\n", z.err);
		st_lazy_free(&z);
		return;
	}
	st_lazy_finish(&z);
	bgsnap_lazy *l = z.l;

	union { struct bgsnap_lazy_stats s; unsigned char b[sizeof(struct bgsnap_lazy_stats) + 32]; } u;
	size_t small = offsetof(struct bgsnap_lazy_stats, pages_total) + sizeof(uint64_t);
	memset(&u, 0xaa, sizeof(u));
	CHECK_RC(bgsnap_lazy_get_stats(l, &u.s, small), 0, "lazy_get_stats into a smaller struct");
	CHECK(u.s.pages_total == MEM / TU_PAGE, "smaller struct: pages_total %llu",
	      (unsigned long long)u.s.pages_total);
	for (size_t i = small; i < sizeof(u); i++)
		CHECK(u.b[i] == 0xaa, "lazy_get_stats with size %zu wrote byte %zu", small, i);
	memset(&u, 0xaa, sizeof(u));
	CHECK_RC(bgsnap_lazy_get_stats(l, &u.s, sizeof(u)), 0, "lazy_get_stats into a larger struct");
	CHECK(u.s.done == 1, "larger struct: done %d after wait", u.s.done);
	for (size_t i = sizeof(struct bgsnap_lazy_stats); i < sizeof(u); i++)
		CHECK(u.b[i] == 0, "lazy_get_stats with size %zu left byte %zu unzeroed", sizeof(u), i);
	st_lazy_free(&z);
}

int main(void)
{
	const char *want = STR(BGSNAP_VERSION_MAJOR) "." STR(BGSNAP_VERSION_MINOR) "." STR(BGSNAP_VERSION_PATCH);
	CHECK(!strcmp(bgsnap_version(), want), "bgsnap_version() is %s, the header says %s", bgsnap_version(), want);
	check_options();
	check_params();
	check_lazy_stats();
	printf("ok\n");
	return 0;
}
