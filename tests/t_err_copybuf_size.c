/*
 * t_err_copybuf_size.c - a copy buffer that is absurd or cannot be mapped is
 * a clean error, never a crash:
 *  - bgsnap_create refuses a copy_buffer_bytes larger than the machine's
 *    physical memory (1 TiB here, and physical memory + one page) with
 *    -EINVAL, and accepts physical memory itself;
 *  - for every tracking method, with RLIMIT_AS lowered so that a copy
 *    buffer within that bound cannot be mapped, bgsnap_start returns a
 *    negative errno with a message, leaves no file, leaves the region
 *    writable, and the engine still takes a good snapshot once the limit
 *    is back.
 * timeout: 120
 */
#include <inttypes.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "snaptest.h"

#define MEM (1u << 20)
#define BIG_BUFFER ((size_t)4 << 30)    /* 4 GiB: within physical memory, beyond the lowered limit */

static uint64_t phys_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	CHECK(pages > 0 && psz > 0, "sysconf(_SC_PHYS_PAGES): %s", strerror(errno));
	return (uint64_t)pages * (uint64_t)psz;
}

/* The address space in use now (VmSize), in bytes. */
static uint64_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	CHECK(f != NULL, "open /proc/self/status: %s", strerror(errno));
	char line[256];
	uint64_t kb = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %" SCNu64 " kB", &kb) == 1)
			break;
	fclose(f);
	CHECK(kb > 0, "no VmSize in /proc/self/status");
	return kb * 1024;
}

static int case_unmappable(void *arg)
{
	int method = *(int *)arg;
	const char *dir = tu_tmpdir();
	char path[600];
	snprintf(path, sizeof(path), "%s/s.bgs", dir);
	if (phys_bytes() < BIG_BUFFER)
		SKIP("this machine has less than %zu bytes of physical memory", BIG_BUFFER);

	bgsnap_engine *e = st_engine(method, BIG_BUFFER);
	uint8_t *m = tu_map_anon(MEM);
	tu_fill(m, MEM, 11, 5);
	st_add_region(e, "mem", m, MEM);

	/* Room for what the engine needs (bitmaps, stages, a thread), not
	 * for the 4 GiB buffer. */
	struct rlimit old, low;
	CHECK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit: %s", strerror(errno));
	low = old;
	low.rlim_cur = vm_size() + (256u << 20);
	CHECK(setrlimit(RLIMIT_AS, &low) == 0, "setrlimit(RLIMIT_AS): %s", strerror(errno));
	tu_phase("bgsnap_start with a copy buffer that cannot be mapped");
	int r = bgsnap_start(e, path);
	if (r == 0)
		r = bgsnap_wait(e);
	CHECK(setrlimit(RLIMIT_AS, &old) == 0, "setrlimit back: %s", strerror(errno));
	CHECK(r < 0, "a snapshot whose copy buffer cannot be mapped returned %s", tu_errname(r));
	CHECK_ERRMSG(e);
	CHECK_DIR_COUNT(dir, 0, "the failed start left a file");
	CHECK_WRITABLE("region after the failed start", m, MEM);
	bgsnap_destroy(e);

	/* The limit back, a sane buffer: a good snapshot. */
	e = st_engine(method, 1u << 20);
	st_add_region(e, "mem", m, MEM);
	st_snapshot_ok(e, path);
	CHECK_FILE_REGION(path, "mem", m, MEM);
	bgsnap_destroy(e);
	return 0;
}

static void check_create(size_t bytes, int want, const char *what)
{
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.copy_buffer_bytes = bytes;
	bgsnap_engine *e = NULL;
	int r = bgsnap_create(&e, &o);
	CHECK(r == want, "bgsnap_create with copy_buffer_bytes = %zu (%s) returned %s, expected %s", bytes, what,
	      tu_errname(r), tu_errname(want));
	CHECK((e != NULL) == (want == 0), "bgsnap_create returned %d but engine %p", r, (void *)e);
	bgsnap_destroy(e);
}

int main(void)
{
	uint64_t phys = phys_bytes();
	if (phys < ((uint64_t)1 << 40))
		check_create((size_t)1 << 40, -EINVAL, "1 TiB");
	check_create((size_t)phys + TU_PAGE, -EINVAL, "physical memory + one page");
	check_create(SIZE_MAX, -EINVAL, "SIZE_MAX");
	check_create((size_t)phys, 0, "physical memory");
	printf("ok: absurd copy buffer sizes refused with -EINVAL\n");

	struct tu_tally t = { 0 };
	st_for_each_method(&t, "copybuf_unmappable", case_unmappable, ST_MASK_TRACKING, 60);
	tu_tally_exit(&t, "t_err_copybuf_size");
}
