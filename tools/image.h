/*
 * image.h - snapshot regions written into a file as raw bytes at a chosen
 * offset, zero pages left as holes: the part `bgsnap extract` (one region,
 * a raw image) and its --elf form (every region, an ELF core) share.
 *
 * The file is created mode 0600 (it holds someone's memory), sized first so
 * that pages never written read as zeros, fsynced at the end, and removed
 * again when anything failed: no half image is left behind.
 */
#ifndef BGSNAP_TOOLS_IMAGE_H
#define BGSNAP_TOOLS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "bgsnap.h"

struct image_stats {
	uint64_t data_pages;         /* non-zero pages written               */
	uint64_t zero_pages;         /* pages left as holes                  */
};

/* Creates (or truncates) `path` at `size` bytes; the descriptor, or -errno
 * with a message in err. */
int image_create(const char *path, uint64_t size, char *err, size_t err_len);
/* pwrite of all `len` bytes at `off`; 0 or -errno. */
int image_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/*
 * Writes the `pages` pages of region `idx` (page size `ps`) at file offset
 * `off`, every page read through the reader (checksums checked).  Adds to
 * *st.  Returns 0, or -errno with a message in err.
 */
int image_write_region(bgsnap_reader *r, unsigned idx, uint64_t pages, uint32_t ps, int fd, uint64_t off,
                       struct image_stats *st, const char *path, char *err, size_t err_len);
/*
 * Ends the image: fsync and close when rc is 0; removes the file when rc or
 * they fail.  Returns rc, or the fsync/close failure with a message in err.
 */
int image_finish(int fd, const char *path, int rc, char *err, size_t err_len);

#endif
