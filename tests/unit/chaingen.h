/*
 * chaingen.h - chains of snapshot files for the chain tests, the CLI tests
 * and the fuzz seed corpus, through the real encoder (fmtgen.h): a full
 * version 3 file, then incremental files, each after changing a seeded
 * random part of the memory (new data, new zero pages) and holding exactly
 * the pages it changed, and a few it did not.  The memory of the spec is
 * the image of the last file written.
 */
#ifndef BGSNAP_CHAINGEN_H
#define BGSNAP_CHAINGEN_H

#include <stdint.h>

#include "fmtgen.h"
#include "format/format.h"

#define CG_MAX_LINKS 64

struct cg_chain {
	unsigned n;                          /* files written */
	char path[CG_MAX_LINKS][512];
	struct fmt_lineage lin[CG_MAX_LINKS];
	uint32_t crc[CG_MAX_LINKS];          /* each file's TRAILER file_crc */
};

/* A 16-byte lineage id derived from (seed, k), never zero. */
void cg_id(uint8_t id[16], uint64_t seed, unsigned k);
/* Writes `links` files (1 full + links-1 incremental) named
 * DIR/PREFIX-NNN.bgs for the built spec `s`, whose memory changes along
 * the way (one in `change_den` pages per link); `seed` makes the ids and
 * the changes.  Fails the test on error. */
void cg_write(struct fg_spec *s, const char *dir, const char *prefix, unsigned links, unsigned change_den,
              uint64_t seed, struct cg_chain *c);
/* Rewrites header bytes [off, off+len) of the file at `path` (an offset in
 * the HEADER payload) and fixes the header crc, the whole-file crc and the
 * trailer crc, so that only the rules behind the checksums can refuse it. */
void cg_patch_header(const char *path, uint64_t off, const void *bytes, size_t len);

#endif
