/* region_check.h - is a memory range trackable?  (see region_check.c) */
#ifndef BGSNAP_REGION_CHECK_H
#define BGSNAP_REGION_CHECK_H
#include <stdint.h>
#include "util/err.h"
/* 0, -EFAULT (not entirely mapped), -ENOTSUP (file-backed, mixed page
 * sizes), -EBUSY (aliased) or -EINVAL (hugetlb not aligned to its huge
 * page).  *shared is set when any of it is a MAP_SHARED mapping (memfd,
 * shmem); *page_bytes to its kernel page size (4096, or the hugetlb page
 * size). */
int region_check(const void *addr, uint64_t len, int *shared, uint64_t *page_bytes, struct bgsnap_err *err);
/* As region_check, and every page must be mapped read-write (mprotect). */
int region_check_writable(const void *addr, uint64_t len, struct bgsnap_err *err);
#endif
