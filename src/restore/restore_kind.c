/*
 * restore_kind.c - which memory a lazy restore can fill, besides private
 * anonymous memory (restore_lazy.c): hugetlb memory, private or shared, a
 * whole huge page per UFFDIO_COPY; shared memory (memfd, shmem),
 * where UFFDIO_COPY of a missing page allocates it in the file's page cache
 * (docs/RESTORE.md says why not UFFDIO_CONTINUE).  1 GiB pages are filled
 * too, at the cost of a 1 GiB buffer for the fault handler and one for the
 * prefetch.  Other files cannot be registered: refused with the reason.
 */
#include <inttypes.h>

#include "os/proc_maps.h"
#include "restore/restore_int.h"

#define LAZY_HUGE_MAX (1ull << 30)   /* the largest hugetlb page lazy restore fills */

typedef unsigned long long ull;

struct kind_ctx {
	int shared, huge, mixed;
	uint64_t page;     /* of the mappings seen so far; 0 before the first */
};

static int kind_one(const struct maps_entry *m, void *arg)
{
	struct kind_ctx *k = arg;
	uint64_t psz = PAGE_SIZE_;
	k->shared |= m->perms[3] == 's';
	if (m->path[0] == '/' && maps_page_size(m->lo, &psz) == 0 && psz > PAGE_SIZE_)
		k->huge = 1;
	if (k->page && k->page != psz)
		k->mixed = 1;
	k->page = psz;
	return 0;
}

/* A target that is not private anonymous memory: 1 with *unit and *shared
 * set if lazy restore can fill it (private or shared hugetlb memory,
 * a whole huge page per install; shared 4 KiB memory, which the kernel
 * registers only if it is shmem: memfd, tmpfs, MAP_SHARED|MAP_ANONYMOUS);
 * else why it cannot be restored lazily. */
int rst_lazy_other_target(unsigned i, const void *dst, uint64_t len, uint64_t *unit, int *shared,
                          struct bgsnap_err *e)
{
	struct kind_ctx k = { 0, 0, 0, 0 };
	int rc = maps_walk(dst, len, kind_one, &k, e);
	if (rc < 0)
		return rc;
	*shared = k.shared;
	if (k.huge && !k.mixed && k.page <= LAZY_HUGE_MAX && ((uintptr_t)dst | len) % k.page == 0) {
		*unit = k.page / PAGE_SIZE_;
		return 1;
	}
	if (k.huge)
		return err_set(e, -ENOTSUP, "target %u at %p is hugetlb memory of %llu KiB pages: lazy restore fills "
		               "hugetlb memory of one page size, 1 GiB at most (a whole huge page per fault, held in "
		               "a buffer), aligned to it; restore it eagerly (bgsnap_restore)", i, dst,
		               (ull)(k.page >> 10));
	if (k.shared && !k.mixed) {
		*unit = 1;
		return 1;
	}
	return err_set(e, -ENOTSUP, "target %u at %p: lazy restore needs private anonymous, shmem (memfd) or "
	               "hugetlb memory (a private file-backed mapping cannot be filled with UFFDIO_COPY)", i, dst);
}
