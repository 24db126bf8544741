/*
 * t_reader_guard - read_region never writes outside [dst, dst+dst_len):
 * dst sits between PROT_NONE guard pages, and the file's INDEX is damaged
 * byte by byte with its checksums recomputed, so only the reader's own
 * structural checks stand between a crafted index and a stray write (which
 * would crash this test).  Also: read_page of every page of such files.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/crc32c.h"
#include "fmtgen.h"
#include "format/format.h"
#include "format/le.h"
#include "testutil.h"

/* Reads every region (and every page) of `path` into guarded buffers.
 * Returns 1 if the file opened and all reads succeeded. */
static int read_all(const char *path, const struct fg_spec *s, uint8_t **dst, int compare)
{
	bgsnap_reader *r;
	char err[512];
	if (bgsnap_reader_open(&r, path, err, sizeof(err)) < 0)
		return 0;
	int ok = 1;
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	for (unsigned i = 0; i < fi.region_count && i < s->nregions; i++) {
		struct bgsnap_region_info ri;
		CHECK_RC(bgsnap_reader_region(r, i, &ri, sizeof ri), 0, "region");
		if (ri.size != s->pages[i] * TU_PAGE) {
			CHECK_RC(bgsnap_reader_read_region(r, i, dst[i], s->pages[i] * TU_PAGE, 0), -EINVAL, "size mismatch");
			ok = 0;
			continue;
		}
		int rc = bgsnap_reader_read_region(r, i, dst[i], ri.size, 0);
		if (rc < 0)
			ok = 0;
		else if (compare)
			CHECK(!memcmp(dst[i], s->mem[i], ri.size), "region %u differs", i);
		for (uint64_t p = 0; p < s->pages[i]; p++) {
			rc = bgsnap_reader_read_page(r, i, p, dst[i] + p * TU_PAGE);
			if (rc < 0)
				ok = 0;
		}
	}
	bgsnap_reader_close(r);
	return ok;
}

int main(void)
{
	struct fg_spec s;
	fg_default(&s);
	fg_build(&s);
	char path[512];
	snprintf(path, sizeof(path), "%s/g.bgs", tu_tmpdir());
	fg_write_path(&s, path);
	uint8_t *dst[FG_MAX_REGIONS];
	for (unsigned i = 0; i < s.nregions; i++)
		dst[i] = tu_map_guarded(s.pages[i] * TU_PAGE);
	CHECK(read_all(path, &s, dst, 1), "intact file: reads failed");

	size_t len;
	uint8_t *orig = fg_read_file(path, &len);
	uint8_t *b = malloc(len);
	size_t toff = len - FMT_TRAILER_REC_LEN;
	uint64_t io = le64_load(orig + toff + FMT_REC_HDR_LEN);
	CHECK(io < toff, "index offset");
	unsigned opened = 0, damaged = 0;
	int mfd = memfd_create("guard", MFD_CLOEXEC);
	CHECK(mfd >= 0, "memfd_create: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	for (size_t at = io + FMT_REC_HDR_LEN; at < toff - 4; at++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(b, orig, len);
			b[at] ^= (uint8_t)(1u << bit);
			le32_store(b + toff - 4, crc32c(0, b + io, toff - 4 - io));
			le32_store(b + toff + FMT_REC_HDR_LEN + 48, crc32c(0, b, toff));
			le32_store(b + len - 4, crc32c(0, b + toff, FMT_TRAILER_REC_LEN - 4));
			CHECK(ftruncate(mfd, 0) == 0 && pwrite(mfd, b, len, 0) == (ssize_t)len, "memfd write");
			damaged++;
			opened += read_all(path, &s, dst, 0);
		}
	}
	/* No bit of the index is free: every damaged copy must fail somewhere. */
	CHECK(opened == 0, "%u of %u damaged-index files read without error", opened, damaged);
	printf("ok: %u index-damaged files, no stray write, none accepted\n", damaged);
	free(b);
	free(orig);
	fg_free(&s);
	return 0;
}
