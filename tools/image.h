/*
 * image.h - snapshot regions written into a file as raw bytes at a chosen
 * offset, zero pages left as holes: the part `bgsnap extract` (one region,
 * a raw image) and its --elf form (every region, an ELF core) share.
 *
 * The output is built in a temporary file of its own (created O_EXCL, mode
 * 0600: it holds someone's memory) in the output's directory, sized first
 * so that pages never written read as zeros, fsynced, and renamed over the
 * output only when complete.  A failure removes the temporary and nothing
 * else: a file the command did not create is never truncated nor unlinked,
 * and an output that is the input snapshot itself (the same inode, also
 * through a symlink or a hard link) is refused before anything is written.
 * A symlink as the output is followed: the file it points to is replaced.
 *
 * Zero runs are runs: a ZERO record of 2^20 pages is one hole, not 2^20
 * page reads, so a small crafted file costs time in proportion to its
 * records, not to the memory it describes.  What it describes can still
 * be huge (16 TiB): an output larger than the free space of its file
 * system is refused unless forced.
 */
#ifndef BGSNAP_TOOLS_IMAGE_H
#define BGSNAP_TOOLS_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgsnap.h"
#include "cli/progress.h"

struct image_stats {
	uint64_t data_pages;         /* non-zero pages written               */
	uint64_t zero_pages;         /* pages left as holes                  */
	struct progress *bar;        /* in: told the bytes done (NULL: none) */
};

/* Where an image goes and what it must not be. */
struct image_target {
	const char *path;            /* the output, as given                 */
	const char *input;           /* the snapshot read: never the output  */
	bool force;                  /* write even beyond the free space     */
	struct progress *bar;        /* progress of the pages (NULL: none)   */
};

/* An image being written. */
struct image_out {
	int fd;                      /* the temporary, open for writing      */
	char *final;                 /* the output (a symlink resolved)      */
	char *tmp;                   /* the temporary's name                 */
};

/*
 * Checks the target (not the input, a regular file or absent, fits the
 * free space unless forced) and creates its temporary at `size` bytes.
 * Returns 0 with *o ready, or -errno with a message in err (nothing
 * created).
 */
int image_create(struct image_out *o, const struct image_target *t, uint64_t size, char *err, size_t err_len);
/* pwrite of all `len` bytes at `off`; 0 or -errno. */
int image_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/*
 * Writes the `pages` pages of region `idx` (page size `ps`) at file offset
 * `off`: each data run read through the reader (checksums checked), each
 * zero run skipped as one hole.  Adds to *st.  Returns 0, or -errno with a
 * message in err.
 */
int image_write_region(bgsnap_reader *r, unsigned idx, uint64_t pages, uint32_t ps, int fd, uint64_t off,
                       struct image_stats *st, const char *path, char *err, size_t err_len);
/*
 * Ends the image: when rc is 0, fsync, close and rename over the output
 * (then the directory is fsynced); otherwise, or when one of those fails,
 * the temporary is removed.  Frees what image_create allocated.  Returns
 * rc, or the failure with a message in err.
 */
int image_finish(struct image_out *o, int rc, char *err, size_t err_len);

#endif
