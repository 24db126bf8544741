/*
 * format_adapt.c - compress this chunk or store it raw (format_adapt.h).
 */
#include "format/format_adapt.h"

int fmt_adapt_choose(const struct fmt_adapt_in *in)
{
	/* Unmeasured or stale: one chunk compressed tells the compressor's
	 * speed and the content's ratio. */
	if ((!in->comp_rate || in->raw_streak >= FMT_ADAPT_PROBE_EVERY) && (in->slot_free || !in->threads))
		return FMT_ADAPT_COMPRESS;
	if (!in->comp_rate || in->ratio_permille >= FMT_ADAPT_MAX_PERMILLE)
		return FMT_ADAPT_RAW;
	uint64_t dest = in->dest_rate;
	if (in->max_rate && (!dest || in->max_rate < dest))
		dest = in->max_rate;
	/* Compressing a chunk on the writer's own CPU and writing the frame
	 * is quicker than writing the chunk raw, even with half a CPU (what
	 * a thread gets on a machine the host keeps busy): worth waiting for
	 * a buffer, and compressing one, as the fixed mode does. */
	uint32_t ratio = in->ratio_permille ? in->ratio_permille : 500u;
	if (dest && dest < in->comp_rate / 2000u * (1000u - ratio))
		return FMT_ADAPT_COMPRESS_WAIT;
	if (!in->threads || !in->slot_free)
		return FMT_ADAPT_RAW;
	/* A chunk the threads compress costs the writer nothing (a buffer
	 * is free, it will not wait for one): it pays whenever the
	 * destination, not the writer, bounds the run. */
	if (in->max_rate || in->dest_behind)
		return FMT_ADAPT_COMPRESS;
	/* A destination written from the writer's own thread shows no queue:
	 * its rate against the compressors'. */
	return dest && dest < in->comp_rate * in->threads ? FMT_ADAPT_COMPRESS : FMT_ADAPT_RAW;
}
