/*
 * format_int.h - what the encoder's two files share (private to
 * format_write.c and format_chunk.c): the raw and compressed record writers
 * of format_write.c, and the chunker of format_chunk.c.
 */
#ifndef BGSNAP_FORMAT_INT_H
#define BGSNAP_FORMAT_INT_H

#include "format/format.h"

/* format_write.c: records straight to the output (the batch is flushed
 * first, so record offsets stay in order); `data` may be reused on return. */
int fw_write_raw(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data);
/* Queues PAGES records of `data` into the current batch, which the public
 * call that got here flushes before it returns (`data` is the caller's
 * until then). */
int fw_queue_raw(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data);
int fw_write_cpages(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *frame,
                    size_t clen);

/* format_chunk.c: the compressed path. */
int fwc_new(struct fmt_writer *w, const struct fmt_codec *codec);
void fwc_free(struct fmt_writer *w);
/* Appends non-zero pages (already marked seen) to the pending chunk,
 * writing it out first when they do not continue it or it is full. */
int fwc_add(struct fmt_writer *w, uint32_t region, uint64_t first, uint64_t count, const void *data);
/* Gathers one page (a fault copy) into the list of single pages, each
 * compressed on its own (a CPAGES record of one page, if that pays). */
int fwc_page(struct fmt_writer *w, uint32_t region, uint64_t page, const void *data);
/* Writes out the pending chunk, if any. */
int fwc_flush(struct fmt_writer *w);

#endif
