/* cmd_diff.c - `bgsnap diff A B`: compares two snapshots page by page
 * (region layout first, then content), reading both through the reader's
 * checked read_page.  Exit 0 identical, 1 different (or unreadable). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "cli.h"

#define SHOW_RANGES 8

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap diff A B\n\n"
	           "Compares snapshots A and B: the region layout (names and sizes; a different\n"
	           "address is reported but the content is still compared),\n"
	           "then every page of every region.  Prints, per region, how many pages\n"
	           "differ and the first differing page ranges, and which state blobs differ.\n"
	           "Exit 0 if identical, 1 if different or unreadable, 2 on bad usage.\n");
}

static bgsnap_reader *open_one(const char *path)
{
	char err[600];
	bgsnap_reader *r;
	if (bgsnap_reader_open(&r, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "bgsnap diff: %s: %s\n", path, err);
		return NULL;
	}
	return r;
}

/* Compares region i of a and b (same size); returns differing pages or -1. */
static int64_t diff_region(bgsnap_reader *a, bgsnap_reader *b, unsigned i, const char *name, uint64_t pages,
                           uint32_t ps, const char *pa, const char *pb)
{
	uint8_t *x = malloc(ps), *y = malloc(ps);
	if (!x || !y) {
		fprintf(stderr, "bgsnap diff: out of memory\n");
		free(x);
		free(y);
		return -1;
	}
	int64_t ndiff = 0;
	unsigned shown = 0;
	uint64_t run_start = 0, run_len = 0;
	char ranges[SHOW_RANGES * 48] = "";
	for (uint64_t p = 0; p <= pages; p++) {
		int differs = 0;
		if (p < pages) {
			if (bgsnap_reader_read_page(a, i, p, x) < 0) {
				fprintf(stderr, "bgsnap diff: %s: %s\n", pa, bgsnap_reader_errmsg(a));
				ndiff = -1;
				break;
			}
			if (bgsnap_reader_read_page(b, i, p, y) < 0) {
				fprintf(stderr, "bgsnap diff: %s: %s\n", pb, bgsnap_reader_errmsg(b));
				ndiff = -1;
				break;
			}
			differs = memcmp(x, y, ps) != 0;
		}
		if (differs) {
			if (!run_len)
				run_start = p;
			run_len++;
			ndiff++;
		} else if (run_len) {
			if (shown < SHOW_RANGES) {
				size_t l = strlen(ranges);
				if (run_len == 1)
					snprintf(ranges + l, sizeof(ranges) - l, "%s%" PRIu64, shown ? ", " : "", run_start);
				else
					snprintf(ranges + l, sizeof(ranges) - l, "%s%" PRIu64 "-%" PRIu64, shown ? ", " : "",
					         run_start, run_start + run_len - 1);
			}
			shown++;
			run_len = 0;
		}
	}
	if (ndiff > 0)
		printf("region '%s': %" PRId64 " of %" PRIu64 " pages differ; pages %s%s\n", name, ndiff, pages, ranges,
		       shown > SHOW_RANGES ? ", ..." : "");
	else if (ndiff == 0)
		printf("region '%s': identical (%" PRIu64 " pages)\n", name, pages);
	free(x);
	free(y);
	return ndiff;
}

int cmd_diff(int argc, char **argv)
{
	const char *files[2] = { NULL, NULL };
	int nf = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "bgsnap diff: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (nf < 2) {
			files[nf++] = argv[i];
		} else {
			nf = 3;
		}
	}
	if (nf != 2) {
		fprintf(stderr, "bgsnap diff: two files are required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	bgsnap_reader *a = open_one(files[0]), *b = a ? open_one(files[1]) : NULL;
	if (!a || !b) {
		bgsnap_reader_close(a);
		return EXIT_FAIL;
	}
	struct bgsnap_file_info fa, fb;
	bgsnap_reader_info(a, &fa, sizeof fa);
	bgsnap_reader_info(b, &fb, sizeof fb);
	int differ = 0, failed = 0;
	if (fa.page_size != fb.page_size || fa.region_count != fb.region_count) {
		printf("layout differs: %u regions of %u-byte pages vs %u regions of %u-byte pages\n", fa.region_count,
		       fa.page_size, fb.region_count, fb.page_size);
		differ = 1;
	}
	/* Names and sizes must agree to compare pages; addresses differ between
	 * runs of a process, so a different address is reported but the
	 * content is still compared. */
	for (unsigned i = 0; !differ && i < fa.region_count; i++) {
		struct bgsnap_region_info ra, rb;
		bgsnap_reader_region(a, i, &ra, sizeof ra);
		bgsnap_reader_region(b, i, &rb, sizeof rb);
		if (strcmp(ra.name, rb.name) || ra.size != rb.size) {
			printf("layout differs at region %u: '%s' (%" PRIu64 " bytes) vs '%s' (%" PRIu64 " bytes)\n", i,
			       ra.name, ra.size, rb.name, rb.size);
			differ = 1;
		}
	}
	int layout_differs = differ;
	for (unsigned i = 0; !layout_differs && i < fa.region_count; i++) {
		struct bgsnap_region_info ra, rb;
		bgsnap_reader_region(a, i, &ra, sizeof ra);
		bgsnap_reader_region(b, i, &rb, sizeof rb);
		if (ra.addr != rb.addr) {
			printf("region '%s': address differs (0x%" PRIx64 " vs 0x%" PRIx64 ")\n", ra.name, ra.addr, rb.addr);
			differ = 1;
		}
		int64_t n = diff_region(a, b, i, ra.name, ra.size / fa.page_size, fa.page_size, files[0], files[1]);
		if (n < 0) {
			failed = 1;
			break;
		}
		differ |= n > 0;
	}
	/* State blobs: by name, both ways. */
	for (int side = 0; !failed && side < 2; side++) {
		bgsnap_reader *x = side ? b : a, *y = side ? a : b;
		struct bgsnap_file_info *fx = side ? &fb : &fa;
		for (unsigned i = 0; i < fx->state_count; i++) {
			const char *name;
			const void *dx, *dy;
			size_t lx, ly;
			if (bgsnap_reader_state(x, i, &name, &dx, &lx) < 0)
				continue;
			if (bgsnap_reader_find_state(y, name, &dy, &ly) < 0) {
				printf("state '%s': only in %s\n", name, files[side]);
				differ = 1;
			} else if (!side && (lx != ly || memcmp(dx, dy, lx))) {
				printf("state '%s': differs (%zu vs %zu bytes)\n", name, lx, ly);
				differ = 1;
			}
		}
	}
	bgsnap_reader_close(a);
	bgsnap_reader_close(b);
	if (failed)
		return EXIT_FAIL;
	printf("%s\n", differ ? "snapshots differ" : "snapshots are identical");
	return differ ? EXIT_FAIL : EXIT_OK;
}
