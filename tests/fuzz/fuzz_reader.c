/*
 * fuzz_reader.c - libFuzzer target: the random-access reader on arbitrary
 * bytes (held in a memfd, opened by path like a real file): open (header,
 * trailer, index, states), info, region and state lookups, read_region
 * into an exactly sized buffer, read_page, verify, and a second sequential
 * pass.  Built by tests/fuzz/fuzz.mk with checksum checks relaxed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"

/* Regions larger than this, or past the per-input budget, get read_page
 * probes only: whole-region reads of hundreds of tiny-file regions would
 * make the fuzzer slow, not find more. */
#define MAX_REGION_BYTES (1u << 20)
#define READ_BUDGET      (8u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz_reader", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	bgsnap_reader *r;
	char err[256];
	if (bgsnap_reader_open(&r, path, err, sizeof(err)) < 0) {
		if (r || !err[0])
			abort();   /* contract: *out NULL and a message on failure */
		return 0;
	}
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	uint8_t page[4096];
	uint64_t budget = READ_BUDGET;
	for (unsigned i = 0; i <= fi.region_count; i++) {
		struct bgsnap_region_info ri;
		if (bgsnap_reader_region(r, i, &ri, sizeof ri) < 0)
			continue;
		if (bgsnap_reader_find_region(r, ri.name) != (int)i)
			abort();
		uint64_t pages = ri.size / fi.page_size;
		uint64_t probe[4] = { 0, pages / 2, pages - 1, pages };
		for (int k = 0; k < 4; k++)
			bgsnap_reader_read_page(r, i, probe[k], page);
		if (ri.size <= MAX_REGION_BYTES && ri.size <= budget) {
			budget -= ri.size;
			uint8_t *dst = malloc(ri.size);
			bgsnap_reader_read_region(r, i, dst, ri.size, 0);
			bgsnap_reader_read_region(r, i, dst, ri.size, BGSNAP_READ_DST_ZEROED);
			free(dst);
		}
	}
	for (unsigned i = 0; i <= fi.state_count; i++) {
		const char *name;
		const void *d;
		size_t len;
		if (bgsnap_reader_state(r, i, &name, &d, &len) < 0)
			continue;
		volatile uint8_t sink = 0;
		for (size_t k = 0; k < len; k += 997)
			sink ^= ((const uint8_t *)d)[k];
		(void)sink;
		if (bgsnap_reader_find_state(r, name, &d, &len) < 0)
			abort();
	}
	bgsnap_reader_verify(r);
	struct bgsnap_record rec;
	bgsnap_reader_rewind(r);
	while (bgsnap_reader_next(r, &rec) > 0 && rec.kind != BGSNAP_REC_END)
		if (rec.kind == BGSNAP_REC_PAGES && rec.count) {
			volatile uint8_t last = ((const uint8_t *)rec.data)[rec.count * fi.page_size - 1];
			(void)last;
		}
	bgsnap_reader_close(r);
	return 0;
}
