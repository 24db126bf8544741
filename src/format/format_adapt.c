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
	/* Into a free buffer the chunk costs the writer nothing, but the
	 * compressor's CPU is taken from the writer and the host unless the
	 * writer sleeps anyway (a rate limit) or the destination is slower
	 * than the compressors. */
	if (in->max_rate)
		return FMT_ADAPT_COMPRESS;
	return dest && dest < in->comp_rate * in->threads ? FMT_ADAPT_COMPRESS : FMT_ADAPT_RAW;
}
