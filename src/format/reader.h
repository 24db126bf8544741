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
 */
struct reader_run {
	uint32_t kind;            /* FMT_REC_PAGES, FMT_REC_ZERO or FMT_REC_STATE */
	uint32_t region;
	uint64_t first, count;    /* pages (STATE: region 0, first 0, count = data bytes) */
	uint64_t offset, span;    /* the whole record in the file */
};
size_t reader_run_count(const bgsnap_reader *r);
int reader_run_get(const bgsnap_reader *r, size_t i, struct reader_run *out);
int reader_fd(const bgsnap_reader *r);
/* Checks entry i's record bytes (`rec`, span bytes read at its offset):
 * header and run prefix against the entry, then the checksum.  0 or
 * -EBADMSG with the offset and reason in err. */
int reader_run_check(const bgsnap_reader *r, size_t i, const uint8_t *rec, struct bgsnap_err *err);

#endif
