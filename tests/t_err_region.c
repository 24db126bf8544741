/*
 * t_err_region.c - bgsnap_add_region refuses what it cannot snapshot, with
 * the documented errno and a message, and accepts what it can: unaligned
 * address or length, empty range, bad or duplicate names, overlap, unmapped
 * memory (-EFAULT), file-backed mappings (-ENOTSUP); memfd (shmem) and
 * anonymous memory are accepted, adjacent regions too, and a refused call
 * changes nothing (ids stay dense).
 */
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>

#include "snaptest.h"

#define REFUSE(e, name, addr, len, code, why)                                                  \
	do {                                                                                   \
		CHECK_RC(bgsnap_add_region(e, name, addr, len), code, "%s", why);              \
		CHECK(bgsnap_errmsg(e)[0] != '\0', "no error message for: %s", why);           \
		printf("refused %-34s %-10s %s\n", why, tu_errname(code), bgsnap_errmsg(e));   \
	} while (0)

int main(void)
{
	const size_t P = TU_PAGE;
	bgsnap_engine *e = st_engine(BGSNAP_METHOD_AUTO, 0);
	uint8_t *m = tu_map_anon(64 * P);
	int id = 0;

	REFUSE(e, "a", m + 1, 4 * P, -EINVAL, "unaligned address");
	REFUSE(e, "a", m, 4 * P + 1, -EINVAL, "unaligned length");
	REFUSE(e, "a", m, 100, -EINVAL, "length below a page");
	REFUSE(e, "a", m, 0, -EINVAL, "zero length");
	REFUSE(e, "", m, 4 * P, -EINVAL, "empty name");
	REFUSE(e, NULL, m, 4 * P, -EINVAL, "NULL name");
	char longname[80];
	memset(longname, 'n', 64);
	longname[64] = '\0';
	REFUSE(e, longname, m, 4 * P, -EINVAL, "64-byte name");

	/* The first valid region gets id 0 despite the refusals before it. */
	CHECK_RC(bgsnap_add_region(e, "a", m, 4 * P), id, "valid region after refusals: %s", bgsnap_errmsg(e));
	id++;
	REFUSE(e, "a", m + 8 * P, 4 * P, -EINVAL, "duplicate name");
	REFUSE(e, "b", m + 2 * P, 4 * P, -EINVAL, "overlap at the end");
	REFUSE(e, "b", m, 2 * P, -EINVAL, "overlap inside");
	REFUSE(e, "b", m, 4 * P, -EINVAL, "same range");
	REFUSE(e, "b", m, 16 * P, -EINVAL, "overlap containing");
	/* Adjacent is not overlapping. */
	CHECK_RC(bgsnap_add_region(e, "b", m + 4 * P, 4 * P), id, "adjacent region: %s", bgsnap_errmsg(e));
	id++;
	memset(longname, 'x', 63);
	longname[63] = '\0';
	CHECK_RC(bgsnap_add_region(e, longname, m + 8 * P, 4 * P), id, "63-byte name: %s", bgsnap_errmsg(e));
	id++;
	/* A region overlapping one added before the last. */
	REFUSE(e, "c", m + 3 * P, 2 * P, -EINVAL, "overlap with the first region");

	/* Unmapped memory: a hole in the middle, and nothing at all. */
	uint8_t *h = tu_map_anon(3 * P);
	CHECK(munmap(h + P, P) == 0, "munmap: %s", strerror(errno));
	REFUSE(e, "hole", h, 3 * P, -EFAULT, "range with a hole");
	REFUSE(e, "hole", h + P, P, -EFAULT, "unmapped page");
	uint8_t *gone = tu_map_anon(4 * P);
	CHECK(munmap(gone, 4 * P) == 0, "munmap: %s", strerror(errno));
	REFUSE(e, "gone", gone, 4 * P, -EFAULT, "unmapped range");

	/* A regular file (ext4/xfs/...; tmpfs would be shmem) mapped shared and private. */
	/* Prefer the test tmpdir; if that is tmpfs (shmem, which can be
	 * tracked), use the working directory. */
	const char *dir = tu_tmpdir();
	struct statfs sfs;
	if (statfs(dir, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC)
		dir = ".";
	CHECK(statfs(dir, &sfs) == 0 && sfs.f_type != TMPFS_MAGIC,
	      "need a directory on a disk file system (not tmpfs) for the file-backed case");
	char fpath[512];
	snprintf(fpath, sizeof(fpath), "%s/t_err_region.%d.tmp", dir, (int)getpid());
	int fd = open(fpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open(%s): %s", fpath, strerror(errno));
	unlink(fpath);
	CHECK(ftruncate(fd, 8 * P) == 0, "ftruncate: %s", strerror(errno));
	void *fs = mmap(NULL, 8 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(fs != MAP_FAILED, "mmap file: %s", strerror(errno));
	memset(fs, 1, 8 * P);
	REFUSE(e, "file", fs, 8 * P, -ENOTSUP, "shared file mapping");
	void *fp = mmap(NULL, 8 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(fp != MAP_FAILED, "mmap file: %s", strerror(errno));
	REFUSE(e, "filep", fp, 8 * P, -ENOTSUP, "private file mapping");
	/* Half anonymous, half file: refused as a whole. */
	uint8_t *mix = tu_map_anon(8 * P);
	CHECK(mmap(mix + 4 * P, 4 * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED,
	      "mmap fixed: %s", strerror(errno));
	REFUSE(e, "mix", mix, 8 * P, -ENOTSUP, "anonymous then file-backed");

	/* memfd (shmem) is accepted. */
	int mfd = memfd_create("t_err_region", MFD_CLOEXEC);
	CHECK(mfd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(mfd, 8 * P) == 0, "ftruncate memfd: %s", strerror(errno));
	void *ms = mmap(NULL, 8 * P, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	CHECK(ms != MAP_FAILED, "mmap memfd: %s", strerror(errno));
	CHECK_RC(bgsnap_add_region(e, "memfd", ms, 8 * P), id, "memfd region: %s", bgsnap_errmsg(e));
	id++;

	/* Refusals did not leave half-added regions: the next id is dense. */
	CHECK_RC(bgsnap_add_region(e, "last", m + 16 * P, 16 * P), id, "region after all refusals: %s",
	         bgsnap_errmsg(e));
	bgsnap_destroy(e);
	close(fd);
	close(mfd);
	printf("all region checks passed\n");
	return 0;
}
