/*
 * region_check.c - decides whether a range of the process's memory can be a
 * region, by reading /proc/self/maps: every byte must be mapped, and every
 * mapping must be anonymous or shmem (memfd, MAP_SHARED|MAP_ANONYMOUS, SysV)
 * or hugetlbfs, because userfaultfd cannot write-protect file-backed pages
 * (ext4, xfs, ...) and mprotect/fork could not give the pause-instant
 * content of a file that others may write.
 */
#include "os/region_check.h"
#include "os/proc_maps.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* A mapping's backing, from the path column of /proc/self/maps. */
static int backing_ok(const char *path)
{
	if (path[0] == '\0' || path[0] == '[')   /* anonymous, [heap], [stack], [anon:x] */
		return 1;
	if (!strncmp(path, "/memfd:", 7) || !strncmp(path, "/dev/zero", 9) ||
	    !strncmp(path, "/SYSV", 5))
		return 1;
	return 0;
}

struct check_ctx {
	int need_rw;
	int shared;
	struct bgsnap_err *err;
};

static int check_one(const struct maps_entry *m, void *arg)
{
	struct check_ctx *c = arg;
	if (!backing_ok(m->path))
		return err_set(c->err, -ENOTSUP,
		               "memory at 0x%" PRIx64 " is backed by file '%s': file-backed mappings "
		               "cannot be write-protected; use anonymous memory or a memfd", m->lo, m->path);
	/* mprotect would restore PROT_READ|PROT_WRITE: it must be what the
	 * host had. */
	if (c->need_rw && (m->perms[0] != 'r' || m->perms[1] != 'w'))
		return err_set(c->err, -ENOTSUP, "memory at 0x%" PRIx64 " is mapped '%s', not read-write: "
		               "the mprotect method can only track read-write regions", m->lo, m->perms);
	if (m->perms[3] == 's')
		c->shared = 1;
	return 0;
}

int region_check(const void *addr, uint64_t len, int *shared, struct bgsnap_err *err)
{
	struct check_ctx c = { 0, 0, err };
	int r = maps_walk(addr, len, check_one, &c, err);
	*shared = c.shared;
	return r;
}

int region_check_writable(const void *addr, uint64_t len, struct bgsnap_err *err)
{
	struct check_ctx c = { 1, 0, err };
	return maps_walk(addr, len, check_one, &c, err);
}
