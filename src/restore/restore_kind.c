/*
 * restore_kind.c - which memory a lazy restore can fill, besides private
 * anonymous memory (restore_lazy.c): private hugetlb memory of 2 MiB pages,
 * a whole huge page per UFFDIO_COPY.  Shared memory (memfd, shmem, shared
 * hugetlb) cannot be filled by UFFDIO_COPY, and UFFDIO_CONTINUE would need a
 * second mapping of the same file; 1 GiB pages would need a 1 GiB buffer
 * per fault: those are refused with the reason.
 */
#include <inttypes.h>

#include "os/proc_maps.h"
#include "restore/restore_int.h"

#define LAZY_HUGE_MAX (2ull << 20)   /* the hugetlb page size lazy restore fills */

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

/* A target that is not private anonymous memory: 1 with *unit set if it is
 * private 2 MiB hugetlb memory, filled a huge page at a time; else why it
 * cannot be restored lazily. */
int rst_lazy_other_target(unsigned i, const void *dst, uint64_t len, uint64_t *unit, struct bgsnap_err *e)
{
	struct kind_ctx k = { 0, 0, 0, 0 };
	int rc = maps_walk(dst, len, kind_one, &k, e);
	if (rc < 0)
		return rc;
	if (k.huge && !k.shared && !k.mixed && k.page == LAZY_HUGE_MAX && ((uintptr_t)dst | len) % k.page == 0) {
		*unit = k.page / PAGE_SIZE_;
		return 1;
	}
	if (k.huge && !k.shared)
		return err_set(e, -ENOTSUP, "target %u at %p is hugetlb memory of %llu KiB pages: lazy restore fills "
		               "2 MiB huge pages only (a whole huge page per fault, held in a buffer), of one page "
		               "size, aligned; restore it eagerly (bgsnap_restore)", i, dst, (ull)(k.page >> 10));
	if (k.huge)
		return err_set(e, -ENOTSUP, "target %u at %p is shared hugetlb memory: lazy restore cannot fill it "
		               "(UFFDIO_COPY fills private memory only, and UFFDIO_CONTINUE would need a second "
		               "mapping of the same file, which bgsnap is not given); restore it eagerly "
		               "(bgsnap_restore)", i, dst);
	if (k.shared)
		return err_set(e, -ENOTSUP, "target %u at %p is shared memory (memfd/shmem): lazy restore cannot fill "
		               "it (UFFDIO_COPY fills private memory only, and UFFDIO_CONTINUE would need a second "
		               "mapping of the same file, which bgsnap is not given); restore it eagerly "
		               "(bgsnap_restore)", i, dst);
	return err_set(e, -ENOTSUP, "target %u at %p: lazy restore needs private anonymous memory "
	               "(a file-backed mapping cannot be filled with UFFDIO_COPY)", i, dst);
}

