/*
 * reader.h - the reader's internal interface for restore (src/restore/):
 * not part of the public API and not exported by the shared library.
 */
#ifndef BGSNAP_READER_H
#define BGSNAP_READER_H

#include <stdint.h>

#include "bgsnap.h"
#include "util/err.h"

/*
 * Restore's access (restore.c): the index in file order, for threads that
 * pread whole stretches of records themselves.  Entry i's record spans
 * exactly [offset, offset+span), and records are contiguous (checked at
 * open), as are PAGES/ZERO page ranges against their region.  These
 * functions touch no reader state, so any number of threads may call them
 * on one reader (with nothing else using it meanwhile).  Random-access only.
 * A chain's entries are those of each link in turn, oldest first: entry
 * i's record is in file x.fd, and only its pieces (reader_run_piece) are
 * the chain's image; consecutive entries of one link are contiguous.
 */
struct reader_run {
	uint32_t kind;            /* FMT_REC_PAGES, _CPAGES, _ZERO, _STATE or _PAD */
	uint32_t region;
	uint64_t first, count;    /* pages (STATE: region 0, first 0, count = data bytes) */
	uint64_t offset, span;    /* the whole record in the file */
	int fd;                   /* the file: a chain's links each have theirs */
	uint32_t link;            /* 0 for a lone file; a chain's link, oldest 0 */
};
size_t reader_run_count(const bgsnap_reader *r);
int reader_run_get(const bgsnap_reader *r, size_t i, struct reader_run *out);
int reader_fd(const bgsnap_reader *r);
/* 1 when r is an incremental file read without its chain (a link of a
 * chain, bgsnap_reader_chain_link): it holds only some pages, so it
 * cannot be restored on its own. */
int reader_partial(const bgsnap_reader *r);
/* 1 once the sequential pass has read a record (or ended): a restore from
 * the stream would miss what went before. */
int reader_seq_started(const bgsnap_reader *r);
/* The next piece [*first, *first + *count) at or after *from of x's pages
 * that x holds in the image (all of them for a lone file): 1, or 0 when
 * there is none left.  *from starts at 0 and is advanced.  Every page of
 * the image is in exactly one piece of one entry. */
int reader_run_piece(const bgsnap_reader *r, const struct reader_run *x, uint64_t *from, uint64_t *first,
                     uint64_t *count);
/* Checks entry i's record bytes (`rec`, span bytes read at its offset):
 * header and run prefix against the entry, then the checksum.  0 or
 * -EBADMSG with the offset and reason in err. */
int reader_run_check(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct bgsnap_err *err);
/* A thread's buffer for decoding CPAGES records (at most 4 MiB); NULL
 * until reader_run_pages first needs it; free with reader_dec_free. */
struct reader_dec;
void reader_dec_free(struct reader_dec *d);
/* reader_run_check, then the record's pages into *pages: inside `rec` for
 * PAGES, decoded into *dec for CPAGES (count pages exactly; a frame that
 * does not decode to that is -EBADMSG naming the offset), NULL for ZERO
 * and STATE.  Valid until the next call with the same rec or dec. */
int reader_run_pages(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct reader_dec **dec,
                     const uint8_t **pages, struct bgsnap_err *err);

/*
 * Restore straight into the destination.  A PAGES record's page data
 * starts reader_run_data_offset() bytes into the record; a caller that
 * read the record in pieces (head and crc in one place, the pages in the
 * destination) checks it with reader_run_check_split: `rec` holds the
 * record's bytes except the page data, `pages` its x.count pages.  A CPAGES
 * record (`rec`, whole) is checked and then decoded into `dst` (x.count
 * pages) by reader_run_decode_to.  0 or -EBADMSG with the offset in err.
 */
uint64_t reader_run_data_offset(void);
/*
 * Restore by mapping (restore_map.c).  reader_map_layout: 1 when r is a
 * lone file (no chain) of format version 4, whose PAGES data start at
 * multiples of the page size (checked at open for every entry).
 * reader_run_check_parts checks PAGES or ZERO entry i from its first
 * reader_run_data_offset() bytes `head`, its pages (x.count, NULL for
 * ZERO) and its 4 stored checksum bytes `crcb`: what a caller that mapped
 * the pages and pread the rest has.  0 or -EBADMSG with the offset in err.
 */
int reader_map_layout(const bgsnap_reader *r);
int reader_run_check_parts(const bgsnap_reader *r, size_t i, const uint8_t *head, const uint8_t *pages,
                           const uint8_t *crcb, struct bgsnap_err *err);
int reader_run_check_split(const bgsnap_reader *r, size_t i, const uint8_t *rec, const uint8_t *pages,
                           struct bgsnap_err *err);
int reader_run_decode_to(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct reader_dec **dec, uint8_t *dst,
                         struct bgsnap_err *err);

#endif
