/*
 * fuzz_reader.c - libFuzzer target: the random-access reader on arbitrary
 * bytes, opened by path like a real file: open (header, trailer, index,
 * states, an incremental file's chain), info, region and state lookups,
 * read_region into an exactly sized buffer, read_page, verify, and a
 * second sequential pass.  The input is cut into files at each snapshot
 * magic after its start, written into a private directory, and the last
 * one is opened: a chain's files one after the other become a chain
 * whose parents the reader finds by id.  Built by tests/fuzz/fuzz.mk with
 * checksum checks relaxed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"

/* Regions larger than this, or past the per-input budget, get read_page
 * probes only: whole-region reads of hundreds of tiny-file regions would
 * make the fuzzer slow, not find more. */
#define MAX_REGION_BYTES (1u << 20)
#define READ_BUDGET      (8u << 20)
#define MAX_FILES        16
#define MAGIC            "\x89" "BGSNAP\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fr_dir[64];
static unsigned fr_nfiles;

static void remove_files(void)
{
	for (unsigned i = 0; i < fr_nfiles; i++) {
		char p[128];
		snprintf(p, sizeof(p), "%s/f%u", fr_dir, i);
		unlink(p);
	}
	fr_nfiles = 0;
}

static void remove_dir(void)
{
	remove_files();
	rmdir(fr_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fr_dir[0]) {
		snprintf(fr_dir, sizeof(fr_dir), "/dev/shm/fuzz_reader.XXXXXX");
		if (!mkdtemp(fr_dir)) {
			snprintf(fr_dir, sizeof(fr_dir), "/tmp/fuzz_reader.XXXXXX");
			if (!mkdtemp(fr_dir))
				abort();
		}
		atexit(remove_dir);
	}
	remove_files();
	char path[128];
	size_t start = 0;
	while (start < size || !fr_nfiles) {
		size_t end = start + 1;
		while (end < size && (size - end < 8 || memcmp(data + end, MAGIC, 8)))
			end++;
		if (end > size)
			end = size;
		snprintf(path, sizeof(path), "%s/f%u", fr_dir, fr_nfiles++);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || (end > start && write(fd, data + start, end - start) != (ssize_t)(end - start)))
			abort();
		close(fd);
		start = end;
		if (fr_nfiles == MAX_FILES)
			break;
	}
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
