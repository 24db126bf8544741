/*
 * fmtgen.h - builds snapshot files for the format/reader tests, the CLI
 * tests and the fuzz seed corpus, through the real encoder (fmtw_*), from
 * memory filled with known content.  Page runs are written in a seeded
 * random order, with state blobs interleaved, as the engine would.
 */
#ifndef BGSNAP_FMTGEN_H
#define BGSNAP_FMTGEN_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

struct fmt_lineage;

#define FG_MAX_REGIONS 4
#define FG_MAX_STATES  4

struct fg_spec {
	unsigned nregions;
	uint64_t pages[FG_MAX_REGIONS];     /* pages per region                 */
	unsigned zero_every;                /* tu_fill: every Nth page zero     */
	uint64_t seed;
	unsigned max_run;                   /* longest fmtw_pages call (pages)  */
	unsigned nstates;
	size_t state_len[FG_MAX_STATES];
	int compress;                       /* enum fmt_compress: 0 none        */
	unsigned text_regions;              /* bit i: region i compresses well  */
	const struct fmt_lineage *lin;      /* non-NULL: a version 3 file       */
	int aligned;                        /* 1: page-aligned, version 4       */
	const uint8_t *keep[FG_MAX_REGIONS];/* per page, 0: left out (incremental) */
	uint32_t *file_crc;                 /* non-NULL: gets the TRAILER file_crc */
	/* With compress: an adaptive writer (no threads) whose destination
	 * says it is slow for every other fmtw_pages call and fast for the
	 * rest, so that the file mixes compressed and raw chunks; chunks
	 * (non-NULL) gets the writer's chunks_compressed and chunks_raw. */
	int adaptive_mix;
	uint64_t *chunks;
	/* filled by fg_build: */
	char names[FG_MAX_REGIONS][16];
	uint8_t *mem[FG_MAX_REGIONS];
	char state_names[FG_MAX_STATES][16];
	uint8_t *state[FG_MAX_STATES];
};

/* A small default: 3 regions (5, 64, 300 pages), zero pages, 2 states. */
void fg_default(struct fg_spec *s);
/* Makes the non-zero pages of mem text-like (compressible, all different). */
void fg_textify(uint8_t *mem, uint64_t pages);
/* Allocates and fills the memory of `s`. */
void fg_build(struct fg_spec *s);
/* Writes the snapshot of `s` to fd (no seeking); 0 or -errno (message to stderr). */
int fg_write_fd(const struct fg_spec *s, int fd);
/* The file of `s` as a stream: the read end of a pipe that a forked child
 * writes (fg_write_fd) into; fg_stream_end closes it and fails the test
 * unless the child wrote it all. */
int fg_stream_start(const struct fg_spec *s, pid_t *writer);
void fg_stream_end(int fd, pid_t writer);
/* Writes it to a new file `path`; fails the test on error. */
void fg_write_path(const struct fg_spec *s, const char *path);
/* Frees the memory of `s`. */
void fg_free(struct fg_spec *s);

/* Whole-file helpers. */
uint8_t *fg_read_file(const char *path, size_t *len);     /* fails the test on error */
void fg_write_file(const char *path, const void *buf, size_t len);

#endif
