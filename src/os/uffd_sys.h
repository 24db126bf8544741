/*
 * uffd_sys.h - userfaultfd system-call wrappers, and the one place for the
 * kernel constants that Debian 12's headers (Linux 6.1) lack.  Features are
 * always probed at run time with UFFDIO_API, never assumed from these
 * definitions.
 */
#ifndef BGSNAP_UFFD_SYS_H
#define BGSNAP_UFFD_SYS_H

#include <linux/userfaultfd.h>
#include <stdint.h>

#include "util/err.h"

#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
/* UFFDIO_POISON: Linux 6.6. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
/* Asynchronous write-protect (the kernel resolves write faults itself and
 * only clears the page's protection): Linux 6.7. */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
/* The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (linux/fs.h): Linux 6.7. */
#include <linux/fs.h>
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
/* Populating a range before write-protecting it, where the kernel cannot
 * protect unpopulated pages: Linux 5.14. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/*
 * Opens a userfaultfd (O_CLOEXEC | O_NONBLOCK) and negotiates `want`
 * features; `need` must all be granted.  Tries the system call, then
 * /dev/userfaultfd.  On success returns the fd and stores the granted
 * features in *granted (every feature the kernel has, masked by want).
 * On failure returns -errno with a message naming what is missing.
 */
int uffd_open(uint64_t want, uint64_t need, uint64_t *granted, struct bgsnap_err *err);

/* Features the running kernel offers (0 and a message if none). */
int uffd_kernel_features(uint64_t *features, struct bgsnap_err *err);

/* UFFDIO_WRITEPROTECT on [start, start+len); protect=0 removes protection and
 * wakes waiting threads unless dontwake.  Retries EAGAIN (the mm is
 * changing: a non-cooperative event is being delivered) up to `retries`
 * times with a short sleep; returns 0 or -errno. */
int uffd_wp(int fd, uint64_t start, uint64_t len, int protect, int dontwake, int retries);

#endif
