/*
 * region_check.c - decides whether a range of the process's memory can be a
 * region, by reading /proc/self/maps: every byte must be mapped, and every
 * mapping must be anonymous or shmem (memfd, MAP_SHARED|MAP_ANONYMOUS, SysV)
 * or hugetlbfs, because userfaultfd cannot write-protect file-backed pages
 * (ext4, xfs, ...) and mprotect/fork could not give the pause-instant
 * content of a file that others may write.
 */
#include "region_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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

static int check_maps(const void *addr, uint64_t len, int need_rw, int *shared, struct bgsnap_err *err);

int region_check(const void *addr, uint64_t len, int *shared, struct bgsnap_err *err)
{
	return check_maps(addr, len, 0, shared, err);
}

int region_check_writable(const void *addr, uint64_t len, struct bgsnap_err *err)
{
	int shared;
	return check_maps(addr, len, 1, &shared, err);
}

static int check_maps(const void *addr, uint64_t len, int need_rw, int *shared, struct bgsnap_err *err)
{
	*shared = 0;
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return err_sys(err, -errno, "cannot read /proc/self/maps to check the region");
	uint64_t start = (uint64_t)(uintptr_t)addr, end = start + len, covered = start;
	char line[4096 + 256];
	int r = 0;
	while (covered < end && fgets(line, sizeof(line), f)) {
		uint64_t lo, hi;
		char perms[8];
		int path_off = 0;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &lo, &hi, perms, &path_off) < 3)
			continue;
		if (hi <= covered || lo >= end)
			continue;
		if (lo > covered)
			break;   /* a hole before this mapping */
		char *path = line + path_off;
		path[strcspn(path, "\n")] = '\0';
		/* hugetlbfs files are shmem-like and can be tracked; their
		 * mappings show a path, so accept paths the kernel marks as
		 * such only through the flag we cannot see here: be strict. */
		if (!backing_ok(path)) {
			r = err_set(err, -ENOTSUP,
			            "memory at 0x%" PRIx64 " is backed by file '%s': file-backed mappings "
			            "cannot be write-protected; use anonymous memory or a memfd", lo, path);
			break;
		}
		/* mprotect would restore PROT_READ|PROT_WRITE: it must be what
		 * the host had. */
		if (need_rw && (perms[0] != 'r' || perms[1] != 'w')) {
			r = err_set(err, -ENOTSUP, "memory at 0x%" PRIx64 " is mapped '%s', not read-write: "
			            "the mprotect method can only track read-write regions", lo, perms);
			break;
		}
		if (perms[3] == 's')
			*shared = 1;
		covered = hi;
	}
	fclose(f);
	if (r)
		return r;
	if (covered < end)
		return err_set(err, -EFAULT, "0x%" PRIx64 " is not mapped (region 0x%" PRIx64 "+0x%" PRIx64 ")",
		               covered, start, len);
	return 0;
}
