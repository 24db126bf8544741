/*
 * memkind.c - the kinds of memory the bench's region can be (--memory):
 * private anonymous with or without transparent huge pages, private
 * MAP_HUGETLB, and a memfd (plain or MFD_HUGETLB) mapped shared, which is
 * how virtual machine monitors back guest memory.  Also counts the huge
 * pages backing a range, from /proc/self/smaps, to show whether a snapshot
 * left them whole.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli/cli.h"
#include "workload.h"

#define KIND_HUGE (2u << 20)

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004u
#endif

static const char *const kinds[] = {
	[WL_MEM_ANON] = "anon", [WL_MEM_THP] = "thp", [WL_MEM_HUGETLB] = "hugetlb", [WL_MEM_MEMFD] = "memfd",
	[WL_MEM_MEMFD_HUGETLB] = "memfd-hugetlb",
};

const char *wl_memory_name(int memory)
{
	return memory >= 0 && memory < (int)(sizeof(kinds) / sizeof(kinds[0])) ? kinds[memory] : NULL;
}

int wl_memory_parse(const char *name)
{
	for (int k = 0; k < (int)(sizeof(kinds) / sizeof(kinds[0])); k++)
		if (!strcmp(name, kinds[k]))
			return k;
	return -1;
}

/* Anonymous memory, over-mapped and trimmed so that it is 2 MiB aligned
 * (THP-eligible) and exactly one mapping. */
static uint8_t *map_anon(size_t len, bool thp, char *err, size_t err_len)
{
	size_t map_len = len + KIND_HUGE;
	uint8_t *map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		cli_fail(err, err_len, -errno, "mmap %zu bytes: %s", map_len, strerror(errno));
		return NULL;
	}
	uint8_t *mem = (uint8_t *)(((uintptr_t)map + KIND_HUGE - 1) & ~(uintptr_t)(KIND_HUGE - 1));
	if (mem > map)
		munmap(map, (size_t)(mem - map));
	size_t tail = (size_t)((map + map_len) - (mem + len));
	if (tail)
		munmap(mem + len, tail);
	if (madvise(mem, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
		int e = errno;
		munmap(mem, len);
		cli_fail(err, err_len, -e, "madvise(%s): %s", thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", strerror(e));
		return NULL;
	}
	return mem;
}

static const char *hugetlb_hint(int e)
{
	return e == ENOMEM || e == EINVAL ? " (not enough free 2 MiB huge pages: raise /proc/sys/vm/nr_hugepages)"
	                                  : "";
}

/* A memfd of len bytes mapped shared; the mapping keeps it alive. */
static uint8_t *map_memfd(size_t len, bool huge, char *err, size_t err_len)
{
	int fd = memfd_create("bgsnap-bench", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
	if (fd < 0) {
		cli_fail(err, err_len, -errno, "memfd_create%s: %s", huge ? "(MFD_HUGETLB)" : "", strerror(errno));
		return NULL;
	}
	uint8_t *mem = MAP_FAILED;
	int e = 0;
	if (ftruncate(fd, (off_t)len) != 0)
		e = errno;
	else if ((mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
		e = errno;
	close(fd);
	if (e) {
		cli_fail(err, err_len, -e, "memfd of %zu bytes: %s%s", len, strerror(e), huge ? hugetlb_hint(e) : "");
		return NULL;
	}
	return mem;
}

int wl_map_memory(int kind, size_t len, uint8_t **out, char *err, size_t err_len)
{
	bool huge = kind == WL_MEM_HUGETLB || kind == WL_MEM_MEMFD_HUGETLB;
	*out = NULL;
	if (huge && len % KIND_HUGE)
		return cli_fail(err, err_len, -EINVAL, "--memory %s: the size must be a multiple of 2 MiB",
		                wl_memory_name(kind));
	if (kind == WL_MEM_ANON || kind == WL_MEM_THP)
		*out = map_anon(len, kind == WL_MEM_THP, err, err_len);
	else if (kind == WL_MEM_MEMFD || kind == WL_MEM_MEMFD_HUGETLB)
		*out = map_memfd(len, huge, err, err_len);
	else if ((*out = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0)) ==
	         MAP_FAILED) {
		int e = errno;
		*out = NULL;
		cli_fail(err, err_len, -e, "mmap(MAP_HUGETLB) of %zu bytes: %s%s", len, strerror(e), hugetlb_hint(e));
	}
	/* Out of huge pages is a failed run, not bad usage. */
	return *out ? 0 : -ENOMEM;
}

int64_t wl_huge_pages(const void *mem, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -1;
	uint64_t lo = (uintptr_t)mem, hi = lo + len, a = 0, b = 0, kb;
	double bytes = 0;
	char line[512], key[64];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long x, y;
		if (sscanf(line, "%llx-%llx ", &x, &y) == 2) {
			a = x;
			b = y;
			continue;
		}
		uint64_t s = a > lo ? a : lo, t = b < hi ? b : hi;
		if (s >= t || sscanf(line, "%63[^:]: %" SCNu64 " kB", key, &kb) != 2)
			continue;
		if (strcmp(key, "AnonHugePages") && strcmp(key, "ShmemPmdMapped") && strcmp(key, "Private_Hugetlb") &&
		    strcmp(key, "Shared_Hugetlb"))
			continue;
		/* A mapping that sticks out of the range counts by its share. */
		bytes += (double)(kb << 10) * (double)(t - s) / (double)(b - a);
	}
	fclose(f);
	return (int64_t)(bytes / KIND_HUGE + 0.5);
}
