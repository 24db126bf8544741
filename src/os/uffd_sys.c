/*
 * uffd_sys.c - opening a userfaultfd and the few ioctls bgsnap uses.
 *
 * UFFDIO_API may be called once per descriptor, so learning what the kernel
 * offers costs one throw-away descriptor.
 */
#include "os/uffd_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int open_raw(struct bgsnap_err *err)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	int e1 = errno;
	if (e1 == ENOSYS)
		return err_set(err, -ENOSYS, "this kernel has no userfaultfd (CONFIG_USERFAULTFD is off)");
	/* Without CAP_SYS_PTRACE and with vm.unprivileged_userfaultfd=0 the
	 * system call refuses kernel-mode faults; /dev/userfaultfd may still
	 * be open to us. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		int e2 = errno;
		close(dev);
		if (fd >= 0)
			return fd;
		return err_set(err, -e2, "userfaultfd: the system call failed (%s) and /dev/userfaultfd "
		               "refused a new descriptor (%s)", strerror(e1), strerror(e2));
	}
	return err_set(err, -e1 == -EPERM ? -EPERM : -e1,
	               "userfaultfd is not permitted here (%s): it needs CAP_SYS_PTRACE, "
	               "vm.unprivileged_userfaultfd=1, or read-write access to /dev/userfaultfd",
	               strerror(e1));
}

int uffd_kernel_features(uint64_t *features, struct bgsnap_err *err)
{
	*features = 0;
	int fd = open_raw(err);
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int r = 0;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		r = err_sys(err, -errno, "UFFDIO_API handshake failed");
	else
		*features = api.features;
	close(fd);
	return r;
}

int uffd_open(uint64_t want, uint64_t need, uint64_t *granted, struct bgsnap_err *err)
{
	uint64_t have;
	int r = uffd_kernel_features(&have, err);
	if (r)
		return r;
	if ((have & need) != need) {
		uint64_t missing = need & ~have;
		const char *what = "a required userfaultfd feature";
		if (missing & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
			what = "UFFD_FEATURE_PAGEFAULT_FLAG_WP (write-protect faults: Linux 5.7+ for anonymous memory)";
		else if (missing & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
			what = "UFFD_FEATURE_WP_HUGETLBFS_SHMEM (write-protect of shmem/memfd and hugetlbfs: Linux 5.19+)";
		return err_set(err, -ENOTSUP, "this kernel lacks %s; features offered: 0x%llx", what,
		               (unsigned long long)have);
	}
	int fd = open_raw(err);
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API, .features = want & have };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		r = err_sys(err, -errno, "UFFDIO_API with features 0x%llx failed", (unsigned long long)(want & have));
		close(fd);
		return r;
	}
	*granted = want & have;
	return fd;
}

int uffd_wp(int fd, uint64_t start, uint64_t len, int protect, int dontwake, int retries)
{
	struct uffdio_writeprotect wp;
	for (;;) {
		memset(&wp, 0, sizeof(wp));
		wp.range.start = start;
		wp.range.len = len;
		wp.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) |
		          (dontwake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
		if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || retries-- <= 0)
			return -errno;
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
	}
}
