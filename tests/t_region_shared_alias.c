/*
 * t_region_shared_alias.c - bgsnap_add_region refuses memory whose pages
 * this process also maps shared at another address, where a write would
 * not be caught: a memfd mapped twice (whole, or a part of it), a
 * MAP_PRIVATE region of a memfd also mapped shared, a second descriptor of
 * the same memfd.  Each refusal is -EBUSY with a message naming both
 * addresses.  Accepted: a memfd mapped once, two mappings of disjoint parts
 * of a memfd, a MAP_PRIVATE second mapping (its writes stay private),
 * MAP_SHARED|MAP_ANONYMOUS memory, and the first mapping once the second
 * is gone.  Also: MAP_HUGETLB memory is accepted as memory, not refused as
 * a file ("/anon_hugepage" in /proc/self/maps).
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "snaptest.h"

#define P TU_PAGE

static int next_id;

static void accept(bgsnap_engine *e, void *addr, size_t len, const char *what)
{
	char name[32];
	snprintf(name, sizeof(name), "r%d", next_id);
	CHECK_RC(bgsnap_add_region(e, name, addr, len), next_id, "%s refused: %s", what, bgsnap_errmsg(e));
	next_id++;
	printf("accepted %s\n", what);
}

/* Refused with -EBUSY, the message naming `at` (in the region) and `alias`. */
static void refuse_alias(bgsnap_engine *e, void *addr, size_t len, void *at, void *alias, const char *what)
{
	CHECK_RC(bgsnap_add_region(e, "x", addr, len), -EBUSY, "%s accepted", what);
	const char *m = bgsnap_errmsg(e);
	char a[32], b[32];
	snprintf(a, sizeof(a), "0x%lx", (unsigned long)(uintptr_t)at);
	snprintf(b, sizeof(b), "0x%lx", (unsigned long)(uintptr_t)alias);
	CHECK(strstr(m, a) && strstr(m, b), "%s: the message does not name %s and %s: %s", what, a, b, m);
	printf("refused  %s: %s\n", what, m);
}

static int new_memfd(size_t len)
{
	int fd = memfd_create("t_region_shared_alias", MFD_CLOEXEC);
	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(fd, (off_t)len) == 0, "ftruncate: %s", strerror(errno));
	return fd;
}

static uint8_t *map(int fd, size_t len, off_t off, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

int main(void)
{
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_AUTO, 0);

	int fd = new_memfd(16 * P);
	uint8_t *a = map(fd, 8 * P, 0, MAP_SHARED);
	accept(e, a, 8 * P, "a memfd mapped once");
	bgsnap_destroy(e);
	e = st_engine(BGSNAP_METHOD_AUTO, 0);
	next_id = 0;

	uint8_t *b = map(fd, 8 * P, 0, MAP_SHARED);
	refuse_alias(e, a, 8 * P, a, b, "a memfd mapped twice, same pages");
	refuse_alias(e, b + 2 * P, 2 * P, b + 2 * P, a + 2 * P, "part of the second mapping");
	CHECK(munmap(b, 8 * P) == 0, "munmap: %s", strerror(errno));

	uint8_t *c = map(fd, 8 * P, 4 * P, MAP_SHARED);   /* file pages 4..11 */
	refuse_alias(e, a, 8 * P, a + 4 * P, c, "a memfd mapped twice, pages 4..7 in both");
	accept(e, a, 4 * P, "pages 0..3, which the second mapping does not hold");
	CHECK(munmap(c, 8 * P) == 0, "munmap: %s", strerror(errno));

	uint8_t *d = map(fd, 8 * P, 8 * P, MAP_SHARED);   /* file pages 8..15 */
	accept(e, d, 8 * P, "a second mapping of disjoint pages");
	accept(e, a + 4 * P, 4 * P, "pages 4..7 once the overlapping mapping is gone");

	uint8_t *pv = map(fd, 8 * P, 0, MAP_PRIVATE);
	refuse_alias(e, pv, 8 * P, pv, a, "a MAP_PRIVATE region of a memfd also mapped shared");
	char lp[64];
	snprintf(lp, sizeof(lp), "/proc/self/fd/%d", fd);
	int fd2 = open(lp, O_RDWR | O_CLOEXEC);
	CHECK(fd2 >= 0, "reopen the memfd: %s", strerror(errno));
	uint8_t *f2 = map(fd2, 4 * P, 0, MAP_SHARED);
	refuse_alias(e, f2, 4 * P, f2, a, "a mapping through a second descriptor of the memfd");
	CHECK(munmap(f2, 4 * P) == 0, "munmap: %s", strerror(errno));
	close(fd2);

	/* A private second mapping writes only its own copies. */
	int fd3 = new_memfd(4 * P);
	uint8_t *s3 = map(fd3, 4 * P, 0, MAP_SHARED);
	uint8_t *p3 = map(fd3, 4 * P, 0, MAP_PRIVATE);
	accept(e, s3, 4 * P, "a memfd whose second mapping is MAP_PRIVATE");
	(void)p3;

	uint8_t *sa = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sa != MAP_FAILED, "mmap: %s", strerror(errno));
	accept(e, sa, 4 * P, "MAP_SHARED|MAP_ANONYMOUS memory");

	/* MAP_NORESERVE: the mapping exists without a huge-page pool. */
	void *h = mmap(NULL, 4u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE,
	               -1, 0);
	if (h == MAP_FAILED) {
		printf("no MAP_HUGETLB mapping here (%s): hugetlb not checked\n", strerror(errno));
	} else {
		int r = bgsnap_add_region(e, "huge", h, 4u << 20);
		CHECK(r >= 0, "MAP_HUGETLB memory refused: %s", bgsnap_errmsg(e));
		printf("accepted MAP_HUGETLB memory\n");
	}

	bgsnap_destroy(e);
	printf("t_region_shared_alias: ok\n");
	return 0;
}
