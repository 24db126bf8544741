/*
 * t_exec_region_protection.c - a region whose mappings are executable keeps
 * executing during a snapshot, and every mapping gets back exactly its own
 * protection afterwards.  The region is two mappings, rw- and rwx, with
 * code in the rwx one; for every tracking method:
 *  - in the resume hook (everything protected, the writer not started)
 *    and after bgsnap_start, the code runs; the protections in
 *    /proc/self/maps are the original ones, less write for mprotect
 *    (r--p / r-xp), unchanged for the uffd methods;
 *  - a page written during the run is back to its mapping's protection
 *    (rwxp in the rwx half) at once;
 *  - after bgsnap_wait both mappings are exactly rw-p and rwxp again, the
 *    code runs, and the snapshot holds the pause-instant content.
 * timeout: 120
 */
#include <inttypes.h>
#include <sys/mman.h>

#include "snaptest.h"

#define HALF (1u << 20)
#define MEM (2 * HALF)
#define CODE_OFF (HALF + 8 * TU_PAGE)   /* in the rwx half */

static uint8_t *region;

/* mov eax, 42; ret */
static const uint8_t code[] = { 0xb8, 42, 0, 0, 0, 0xc3 };

static int call_code(void)
{
	int (*fn)(void);
	void *p = region + CODE_OFF;
	memcpy(&fn, &p, sizeof(fn));
	return fn();
}

/* The permissions of the mapping holding `addr` ("rwxp"), from /proc/self/maps. */
static void perms_at(const void *addr, char out[8])
{
	FILE *f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL, "open /proc/self/maps: %s", strerror(errno));
	char line[512];
	uint64_t a = (uint64_t)(uintptr_t)addr, lo, hi;
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, out) == 3 && a >= lo && a < hi)
			break;
		else
			out[0] = '\0';
	fclose(f);
	CHECK(out[0], "%p is in no mapping", addr);
}

#define CHECK_PERMS(addr, want, when)                                                        \
	do {                                                                                 \
		char got_[8];                                                                \
		perms_at(addr, got_);                                                        \
		CHECK(!strcmp(got_, want), "%s: the mapping at %p is %s, expected %s", when, \
		      (void *)(addr), got_, want);                                           \
	} while (0)

struct expect {
	const char *rw, *rwx;   /* protections while the snapshot runs */
};

static void in_resume(void *ctx)
{
	struct st_host *h = ctx;
	const struct expect *x = h->user;
	st_resume(h);
	CHECK_PERMS(region, x->rw, "in the pause, rw- half");
	CHECK_PERMS(region + CODE_OFF, x->rwx, "in the pause, rwx half");
	CHECK(call_code() == 42, "the code in the region returned a wrong value in the pause");
}

static int case_exec(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);

	region = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(region != MAP_FAILED, "mmap: %s", strerror(errno));
	tu_fill(region, MEM, 9, 0);
	CHECK(mprotect(region + HALF, HALF, PROT_READ | PROT_WRITE | PROT_EXEC) == 0,
	      "mprotect(rwx): %s (W+X memory refused here?)", strerror(errno));
	memcpy(region + CODE_OFF, code, sizeof(code));
	__builtin___clear_cache((char *)region + CODE_OFF, (char *)region + CODE_OFF + sizeof(code));
	CHECK_PERMS(region, "rw-p", "before");
	CHECK_PERMS(region + CODE_OFF, "rwxp", "before");
	CHECK(call_code() == 42, "the code in the region returned a wrong value before the snapshot");

	struct expect x = { "rw-p", "rwxp" };
	if (method == BGSNAP_METHOD_MPROTECT)
		x = (struct expect){ "r--p", "r-xp" };
	bgsnap_engine *e = st_engine(method, 0);
	st_add_region(e, "mem", region, MEM);
	uint8_t *copy = malloc(MEM);
	CHECK(copy != NULL, "out of memory");
	struct st_host h = { .base = region, .len = MEM, .copy = copy, .user = &x };
	struct bgsnap_hooks hk = { .pause = st_pause, .save_state = st_save, .resume = in_resume, .ctx = &h };
	CHECK_RC(bgsnap_set_hooks(e, &hk), 0, "set_hooks");

	tu_phase("a snapshot of a region with code in it");
	int r = bgsnap_start(e, path);
	CHECK(r == 0, "bgsnap_start: %s: %s", tu_errname(r), bgsnap_errmsg(e));
	CHECK(call_code() == 42, "the code in the region returned a wrong value during the snapshot");
	/* A write in each half: the written page is back to its protection. */
	region[HALF + 32 * TU_PAGE] ^= 0xff;
	region[32 * TU_PAGE] ^= 0xff;
	CHECK_PERMS(region + HALF + 32 * TU_PAGE, "rwxp", "a page of the rwx half just written");
	CHECK_PERMS(region + 32 * TU_PAGE, "rw-p", "a page of the rw- half just written");
	CHECK(call_code() == 42, "the code in the region returned a wrong value during the snapshot");
	r = bgsnap_wait(e);
	CHECK(r == 0, "bgsnap_wait: %s: %s", tu_errname(r), bgsnap_errmsg(e));

	CHECK_PERMS(region, "rw-p", "after, rw- half");
	CHECK_PERMS(region + MEM / 2 - TU_PAGE, "rw-p", "after, end of the rw- half");
	CHECK_PERMS(region + HALF, "rwxp", "after, rwx half");
	CHECK_PERMS(region + MEM - TU_PAGE, "rwxp", "after, end of the rwx half");
	CHECK(call_code() == 42, "the code in the region returned a wrong value after the snapshot");
	CHECK_FILE_REGION(path, "mem", copy, MEM);
	bgsnap_destroy(e);
	free(copy);
	return 0;
}

int main(void)
{
	struct tu_tally t = { 0 };
	st_for_each_method(&t, "exec_region", case_exec, ST_MASK_TRACKING, 30);
	tu_tally_exit(&t, "t_exec_region_protection");
}
