/*
 * page.h - the one page size of the library: the unit in which memory is
 * tracked, protected, copied and restored, and in which the file counts
 * pages (FMT_PAGE_SIZE, which must equal it).  x86-64 base pages; huge
 * pages are tracked as runs of these.
 */
#ifndef BGSNAP_UTIL_PAGE_H
#define BGSNAP_UTIL_PAGE_H

#define PAGE_SHIFT_ 12
#define PAGE_SIZE_ (1u << PAGE_SHIFT_)

#endif
