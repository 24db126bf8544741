/*
 * format_adapt.h - the choice an adaptive compressing writer (fmt_codec
 * adaptive) makes for each chunk: compress it, or store it raw.
 *
 * Compressing a chunk pays when the destination, not the compressor,
 * bounds the run: with compressor threads beside the writer, a snapshot
 * compressed throughout goes at min(compressors, destination / ratio)
 * bytes of memory per second against the destination's rate raw, so it is
 * the faster one exactly when the compressors outrun the destination.
 * Without threads the writer compresses itself, which pays only when
 * compressing and writing the smaller frame takes less time than writing
 * the chunk: destination < compressor * (1 - ratio).
 *
 * Rates are measured, not configured: the destination's is the bytes its
 * write calls took per second of their wall time (an O_DIRECT disk, the
 * page cache until writeback throttles it, a pipe whose reader lags), cut
 * to the rate limit when one is in force; the compressor's is the raw
 * bytes per second of wall time one compression took (on a busy machine
 * that includes waiting for a CPU, which is what counts).
 *
 * The writer never waits for a compressor in this mode: a chunk is
 * compressed only when a chunk buffer is free at once, else it goes raw.
 * A destination slower than the compressors thus gets a mix that keeps
 * both busy, and a choice made on stale rates costs at most the chunks
 * in flight.  Pure: no clock, no state.
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
