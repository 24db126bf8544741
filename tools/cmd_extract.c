/* cmd_extract.c - `bgsnap extract FILE --region NAME -o OUT`: one region as a
 * sparse raw image (the file is sized first; only non-zero pages are
 * written, so zero pages stay holes); with --elf, every region as an ELF
 * core (elf_core.c).  OUT is created mode 0600: it holds
 * someone's memory. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgsnap.h"
#include "cli.h"
#include "elf_core.h"

#define RUN_PAGES 256u   /* pages gathered per pwrite */

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap extract FILE --region NAME -o OUT\n"
	           "       bgsnap extract FILE --elf -o CORE\n\n"
	           "Writes region NAME of snapshot FILE to OUT as a raw image of the region's\n"
	           "size (sparse: zero pages are holes).  OUT is created (or truncated) with\n"
	           "mode 0600.  Every page read is checked against its record's checksum.\n\n"
	           "  --region NAME   the region (see `bgsnap info FILE`)\n"
	           "  --elf           instead: every region as an ELF64 core file, one PT_LOAD\n"
	           "                  per region at its original address, the state blobs and\n"
	           "                  region names as BGSNAP notes (sparse; `gdb -c CORE`)\n"
	           "  -o, --output OUT  the image file\n");
}

static int is_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && !memcmp(p, p + 1, n - 1);
}

static int flush(int fd, const uint8_t *buf, uint64_t pages, uint64_t first, uint32_t ps, const char *out)
{
	size_t len = (size_t)(pages * ps), done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(first * ps + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "bgsnap extract: writing %s: %s\n", out, strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

int cmd_extract(int argc, char **argv)
{
	const char *file = NULL, *region = NULL, *out = NULL;
	int elf = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--elf")) {
			elf = 1;
		} else if (!strcmp(argv[i], "--region") && i + 1 < argc) {
			region = argv[++i];
		} else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
			out = argv[++i];
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "bgsnap extract: unknown option or missing value: '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!file) {
			file = argv[i];
		} else {
			fprintf(stderr, "bgsnap extract: one FILE only\n");
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!file || !out || (!region) == !elf) {
		fprintf(stderr, "bgsnap extract: FILE, -o and one of --region or --elf are required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	char err[600];
	bgsnap_reader *r;
	if (bgsnap_reader_open(&r, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "bgsnap extract: %s: %s\n", file, err);
		return EXIT_FAIL;
	}
	if (elf) {
		struct elf_core_stats st;
		int e = elf_core_write(r, out, &st, err, sizeof(err));
		if (e < 0)
			fprintf(stderr, "bgsnap extract: %s: %s\n", file, err);
		else
			printf("%s: ELF core, %" PRIu64 " bytes (%" PRIu64 " pages written, %" PRIu64 " zero pages as holes)\n",
			       out, st.file_bytes, st.data_pages, st.zero_pages);
		bgsnap_reader_close(r);
		return e < 0 ? EXIT_FAIL : EXIT_OK;
	}
	int idx = bgsnap_reader_find_region(r, region);
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	if (idx < 0) {
		fprintf(stderr, "bgsnap extract: %s: no region named '%s'; regions:", file, region);
		for (unsigned i = 0; i < fi.region_count; i++) {
			struct bgsnap_region_info ri;
			bgsnap_reader_region(r, i, &ri, sizeof ri);
			fprintf(stderr, "%s '%s'", i ? "," : "", ri.name);
		}
		fprintf(stderr, "\n");
		bgsnap_reader_close(r);
		return EXIT_FAIL;
	}
	struct bgsnap_region_info ri;
	bgsnap_reader_region(r, (unsigned)idx, &ri, sizeof ri);
	uint32_t ps = fi.page_size;
	uint8_t *buf = malloc((size_t)RUN_PAGES * ps);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = EXIT_FAIL;
	if (!buf) {
		fprintf(stderr, "bgsnap extract: out of memory\n");
		goto done;
	}
	if (fd < 0) {
		fprintf(stderr, "bgsnap extract: %s: %s\n", out, strerror(errno));
		goto done;
	}
	/* An existing OUT keeps its mode across O_TRUNC: make it private too. */
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)ri.size) < 0) {
		fprintf(stderr, "bgsnap extract: %s: %s\n", out, strerror(errno));
		goto done;
	}
	uint64_t pages = ri.size / ps, run_first = 0, run_len = 0, written = 0;
	for (uint64_t p = 0; p < pages; p++) {
		uint8_t *dst = buf + run_len * ps;
		int e = bgsnap_reader_read_page(r, (unsigned)idx, p, dst);
		if (e < 0) {
			fprintf(stderr, "bgsnap extract: %s: %s\n", file, bgsnap_reader_errmsg(r));
			goto done;
		}
		int z = is_zero(dst, ps);
		if (!z) {
			if (!run_len)
				run_first = p;
			run_len++;
			written++;
		}
		if (run_len && (z || run_len == RUN_PAGES || p + 1 == pages)) {
			if (flush(fd, buf, run_len, run_first, ps, out) < 0)
				goto done;
			run_len = 0;
		}
	}
	if (fsync(fd) < 0 && errno != EINVAL) {
		fprintf(stderr, "bgsnap extract: fsync %s: %s\n", out, strerror(errno));
		goto done;
	}
	printf("%s: region '%s', %" PRIu64 " bytes (%" PRIu64 " of %" PRIu64 " pages non-zero)\n", out, ri.name,
	       ri.size, written, pages);
	rc = EXIT_OK;
done:
	if (fd >= 0 && close(fd) < 0 && rc == EXIT_OK) {
		fprintf(stderr, "bgsnap extract: closing %s: %s\n", out, strerror(errno));
		rc = EXIT_FAIL;
	}
	if (fd >= 0 && rc != EXIT_OK)
		unlink(out);   /* no half image left behind */
	free(buf);
	bgsnap_reader_close(r);
	return rc;
}
