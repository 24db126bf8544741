/*
 * fuzz_stream.c - libFuzzer target: the stream reader on arbitrary bytes
 * (bgsnap_reader_open_stream on an fd read once, as from a pipe): header,
 * every record through next() (touching the last byte of each PAGES and
 * STATE payload), INDEX, TRAILER, then the state blobs after END.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0 && (fd = memfd_create("fuzz_stream", MFD_CLOEXEC)) < 0)
		abort();
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
	bgsnap_reader *r;
	char err[256];
	if (bgsnap_reader_open_stream(&r, fd, err, sizeof(err)) < 0) {
		if (r || !err[0])
			abort();
		return 0;
	}
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	struct bgsnap_record rec;
	int rc;
	uint8_t page[4096];
	while ((rc = bgsnap_reader_next(r, &rec)) > 0) {
		if (rec.kind == BGSNAP_REC_END)
			break;
		volatile uint8_t b = 0;
		if (rec.kind == BGSNAP_REC_PAGES)
			b = ((const uint8_t *)rec.data)[rec.count * fi.page_size - 1];
		if (rec.kind == BGSNAP_REC_STATE && rec.len)
			b = ((const uint8_t *)rec.data)[rec.len - 1];
		(void)b;
	}
	if (bgsnap_reader_read_page(r, 0, 0, page) != -ESPIPE)
		abort();
	if (rc > 0) {
		bgsnap_reader_info(r, &fi, sizeof fi);
		for (unsigned i = 0; i < fi.state_count; i++) {
			const char *name;
			const void *d;
			size_t len;
			if (bgsnap_reader_state(r, i, &name, &d, &len) < 0 || bgsnap_reader_find_state(r, name, &d, &len) < 0)
				abort();
		}
		if (bgsnap_reader_next(r, &rec) != 0)
			abort();
	}
	bgsnap_reader_close(r);
	return 0;
}
