/*
 * format_adapt.h - the choice an adaptive compressing writer (fmt_codec
 * adaptive) makes for each chunk: compress it, or store it raw.
 *
 * Compressing pays when the destination, not the compressor, bounds the
 * run.  Rates are measured, not configured: the destination's is the
 * bytes its write calls took per second of their wall time (an O_DIRECT
 * disk, the page cache until writeback throttles it, a pipe whose reader
 * lags), cut to the rate limit when one is in force; the compressor's is
 * the raw bytes per second of CPU time of the thread that compressed, with
 * the ratio it got.
 *
 * Three answers.  Wait for a buffer if need be and compress (the fixed
 * mode's way) when compressing on the writer's own CPU and writing the
 * frame beats writing the chunk raw, even with half a CPU: destination <
 * compressor / 2 * (1 - ratio).  Compress into a free buffer, which the
 * writer does not wait for, when a rate limit is in force (the writer
 * would sleep anyway) or the destination is slower than the compressor
 * threads together.  Else raw: a compressor thread's CPU comes out of
 * the writer's and the host's.  Pure: no clock, no state.
 */
#ifndef BGSNAP_FORMAT_ADAPT_H
#define BGSNAP_FORMAT_ADAPT_H

#include <stdint.h>

/* Chunks stored raw by choice before one is compressed anyway, to measure
 * the compressor and the content again (the machine's load and the
 * memory's compressibility change): one in 64, 256 MiB of runs. */
#define FMT_ADAPT_PROBE_EVERY 64u
/* Recent chunks shrinking to more than this (per mille) are treated as
 * incompressible: the format's own threshold for storing a chunk raw. */
#define FMT_ADAPT_MAX_PERMILLE 970u

struct fmt_adapt_in {
	uint64_t dest_rate;       /* bytes/s the destination takes; 0: not known yet   */
	uint64_t max_rate;        /* the writer's rate limit in bytes/s; 0: none       */
	uint64_t comp_rate;       /* raw bytes per CPU second of a compressor; 0: never measured */
	uint32_t ratio_permille;  /* stored/raw of recent chunks, 1..1000; 0: unknown  */
	unsigned threads;         /* compressor threads beside the writer (0: itself)  */
	int slot_free;            /* a chunk buffer can be had without waiting         */
	unsigned raw_streak;      /* chunks stored raw by choice since one compressed  */
};

enum fmt_adapt_choice {
	FMT_ADAPT_RAW = 0,           /* store it raw                                   */
	FMT_ADAPT_COMPRESS = 1,      /* compress it in the free buffer                 */
	FMT_ADAPT_COMPRESS_WAIT = 2, /* compress it, waiting for a buffer if need be   */
};

/* Whether the next chunk is compressed (enum fmt_adapt_choice). */
int fmt_adapt_choose(const struct fmt_adapt_in *in);

#endif
