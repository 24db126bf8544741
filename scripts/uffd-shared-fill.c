/*
 * uffd-shared-fill.c - what it costs to fill shared memory through
 * userfaultfd, the two ways the kernel offers (docs/RESTORE.md, "Lazy
 * restore into shared memory"):
 *   copy      registered for missing faults; UFFDIO_COPY from a buffer
 *             allocates each page, fills it and adds it to the file;
 *   continue  registered for minor faults; the page cache is filled
 *             through a second mapping of the same memfd (memcpy), then
 *             UFFDIO_CONTINUE maps those pages into the registered one;
 *   pwrite    as continue, the page cache filled with pwrite on the memfd
 *             (not for hugetlbfs, which has no write(2)).
 * Each fills MiB of a fresh memfd in CHUNK-byte steps (the prefetch's
 * slices are ~4 MiB, a fault's window 64 KiB; a hugetlb chunk is at least
 * one 2 MiB page), checks the registered mapping and prints the time.
 *
 *   cc -O2 -o /tmp/uffd-shared-fill scripts/uffd-shared-fill.c
 *   /tmp/uffd-shared-fill MiB CHUNK_KIB [huge]
 * huge: MFD_HUGETLB (needs MiB/2 free 2 MiB huge pages per way).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int run(const char *way, size_t len, size_t chunk, int huge, const uint8_t *src)
{
	int fd = memfd_create("fill", MFD_CLOEXEC | (huge ? MFD_HUGETLB : 0));
	if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
		die("memfd");
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint8_t *alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || alias == MAP_FAILED)
		die("mmap");
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = { .api = UFFD_API,
	                          .features = strcmp(way, "copy") ? (huge ? UFFD_FEATURE_MINOR_HUGETLBFS
	                                                                  : UFFD_FEATURE_MINOR_SHMEM)
	                                                          : 0 };
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		die("userfaultfd");
	struct uffdio_register reg = { .range = { (uintptr_t)m, len },
	                               .mode = strcmp(way, "copy") ? UFFDIO_REGISTER_MODE_MINOR
	                                                           : UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
	double t0 = now_ms();
	for (size_t off = 0; off < len; off += chunk) {
		if (!strcmp(way, "copy")) {
			struct uffdio_copy c = { .dst = (uintptr_t)(m + off), .src = (uintptr_t)(src + off), .len = chunk };
			if (ioctl(uffd, UFFDIO_COPY, &c) < 0)
				die("UFFDIO_COPY");
			continue;
		}
		if (!strcmp(way, "pwrite")) {
			if (pwrite(fd, src + off, chunk, (off_t)off) != (ssize_t)chunk)
				die("pwrite");
		} else {
			memcpy(alias + off, src + off, chunk);
		}
		struct uffdio_continue c = { .range = { (uintptr_t)(m + off), chunk } };
		if (ioctl(uffd, UFFDIO_CONTINUE, &c) < 0)
			die("UFFDIO_CONTINUE");
	}
	double ms = now_ms() - t0;
	int ok = !memcmp(m, src, len);
	printf("%-8s %s %zu MiB in %zu KiB steps: %8.1f ms (%.2f GB/s)%s\n", way, huge ? "memfd-hugetlb" : "memfd",
	       len >> 20, chunk >> 10, ms, len / ms / 1e6, ok ? "" : "  WRONG CONTENT");
	close(uffd);
	munmap(m, len);
	munmap(alias, len);
	close(fd);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s MiB CHUNK_KIB [huge]\n", argv[0]);
		return 2;
	}
	size_t len = strtoull(argv[1], NULL, 0) << 20, chunk = strtoull(argv[2], NULL, 0) << 10;
	int huge = argc > 3 && !strcmp(argv[3], "huge");
	if (!chunk || len % chunk || (huge && chunk % (2u << 20)))
		return fprintf(stderr, "MiB must be a multiple of the chunk (hugetlb: of 2 MiB)\n"), 2;
	uint8_t *src = malloc(len);
	if (!src)
		die("malloc");
	for (size_t i = 0; i < len; i += 8)
		*(uint64_t *)(src + i) = i * 0x9e3779b97f4a7c15ull;
	int bad = run("copy", len, chunk, huge, src) | run("continue", len, chunk, huge, src);
	if (!huge)
		bad |= run("pwrite", len, chunk, huge, src);
	free(src);
	return bad;
}
