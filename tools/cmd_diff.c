/* cmd_diff.c - `bgsnap diff A B`: compares two snapshots page by page
 * (region layout first, then content), reading both through the reader's
 * checked read_page.  Where both files hold zeros (ZERO records) a whole
 * stretch is equal at once: the work is bounded by the files' records and
 * data pages, not by the memory they describe (a few hundred KiB of ZERO
 * records can describe 16 TiB).  Exit 0 identical, 1 different (or
 * unreadable). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "commands.h"

#define SHOW_RANGES 8

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap diff [--progress|--quiet] A B\n\n"
	           "Compares snapshots A and B: the region layout (names and sizes; a different\n"
	           "address is reported but the content is still compared),\n"
	           "then every page of every region.  Prints, per region, how many pages\n"
	           "differ and the first differing page ranges, and which state blobs differ.\n"
	           "Exit 0 if identical, 1 if different or unreadable, 2 on bad usage.\n\n"
	           "A progress line is shown on stderr while it runs, if stderr is a terminal.\n"
	           PROGRESS_HELP);
}

struct side {
	const char *path;
	bgsnap_reader *r;
	struct bgsnap_file_info fi;
	struct progress *bar;        /* A's only: the pages compared so far  */
	uint64_t pages_before;       /* A's only: pages of earlier regions   */
};

/* The first SHOW_RANGES runs of differing pages, as "3, 7-9, ...". */
struct ranges {
	char text[SHOW_RANGES * 48];
	unsigned runs;
	uint64_t start, len;         /* the run being extended */
};

static void ranges_end_run(struct ranges *g)
{
	if (!g->len)
		return;
	if (g->runs < SHOW_RANGES) {
		size_t l = strlen(g->text);
		const char *sep = g->runs ? ", " : "";
		if (g->len == 1)
			snprintf(g->text + l, sizeof(g->text) - l, "%s%" PRIu64, sep, g->start);
		else
			snprintf(g->text + l, sizeof(g->text) - l, "%s%" PRIu64 "-%" PRIu64, sep, g->start,
			         g->start + g->len - 1);
	}
	g->runs++;
	g->len = 0;
}

static int read_page(struct side *s, unsigned i, uint64_t p, uint8_t *dst)
{
	if (bgsnap_reader_read_page(s->r, i, p, dst) == 0)
		return 0;
	cli_error("%s: %s", s->path, bgsnap_reader_errmsg(s->r));
	return -1;
}

/* The end of the stretch from page p on that both sides store as zeros,
 * or p when one of them stores page p as data; -1 (said) on failure. */
static int64_t zero_stretch(struct side *a, struct side *b, unsigned i, uint64_t p)
{
	struct bgsnap_record ra, rb;
	if (bgsnap_reader_page_run(a->r, i, p, &ra) < 0 || bgsnap_reader_page_run(b->r, i, p, &rb) < 0) {
		struct side *s = bgsnap_reader_errmsg(a->r)[0] ? a : b;
		cli_error("%s: %s", s->path, bgsnap_reader_errmsg(s->r)[0] ? bgsnap_reader_errmsg(s->r) : "no such page");
		return -1;
	}
	if (ra.kind != BGSNAP_REC_ZERO || rb.kind != BGSNAP_REC_ZERO)
		return (int64_t)p;
	uint64_t ea = ra.first_page + ra.count, eb = rb.first_page + rb.count;
	return (int64_t)(ea < eb ? ea : eb);
}

/* Compares region i of a and b (same size); returns differing pages or -1. */
static int64_t diff_region(struct side *a, struct side *b, unsigned i, const char *name, uint64_t pages)
{
	uint32_t ps = a->fi.page_size;
	uint8_t *x = malloc(ps), *y = malloc(ps);
	int64_t ndiff = 0;
	struct ranges g = { .text = "" };
	if (!x || !y) {
		cli_error("out of memory");
		ndiff = -1;
	}
	for (uint64_t p = 0; p < pages && ndiff >= 0;) {
		int64_t z = zero_stretch(a, b, i, p);
		if (z < 0) {
			ndiff = -1;
		} else if ((uint64_t)z > p) {
			ranges_end_run(&g);
			p = (uint64_t)z;
		} else if (read_page(a, i, p, x) < 0 || read_page(b, i, p, y) < 0) {
			ndiff = -1;
		} else {
			if (!memcmp(x, y, ps)) {
				ranges_end_run(&g);
			} else {
				if (!g.len++)
					g.start = p;
				ndiff++;
			}
			p++;
		}
		progress_update(a->bar, (a->pages_before + p) * ps);
	}
	a->pages_before += pages;
	ranges_end_run(&g);
	if (ndiff > 0)
		printf("region '%s': %" PRId64 " of %" PRIu64 " pages differ; pages %s%s\n", name, ndiff, pages, g.text,
		       g.runs > SHOW_RANGES ? ", ..." : "");
	else if (ndiff == 0)
		printf("region '%s': identical (%" PRIu64 " pages)\n", name, pages);
	free(x);
	free(y);
	return ndiff;
}

/* Names and sizes must agree to compare pages; addresses differ between
 * runs of a process, so a different address is reported but the content is
 * still compared.  Returns 1 if the layout differs. */
static int layout_differs(struct side *a, struct side *b)
{
	if (a->fi.page_size != b->fi.page_size || a->fi.region_count != b->fi.region_count) {
		printf("layout differs: %u regions of %u-byte pages vs %u regions of %u-byte pages\n",
		       a->fi.region_count, a->fi.page_size, b->fi.region_count, b->fi.page_size);
		return 1;
	}
	for (unsigned i = 0; i < a->fi.region_count; i++) {
		struct bgsnap_region_info ra, rb;
		bgsnap_reader_region(a->r, i, &ra, sizeof ra);
		bgsnap_reader_region(b->r, i, &rb, sizeof rb);
		if (strcmp(ra.name, rb.name) || ra.size != rb.size) {
			printf("layout differs at region %u: '%s' (%" PRIu64 " bytes) vs '%s' (%" PRIu64 " bytes)\n", i,
			       ra.name, ra.size, rb.name, rb.size);
			return 1;
		}
	}
	return 0;
}

/* Every region's pages; returns 1 if any differ, -1 if one is unreadable. */
static int regions_differ(struct side *a, struct side *b)
{
	int differ = 0;
	for (unsigned i = 0; i < a->fi.region_count; i++) {
		struct bgsnap_region_info ra, rb;
		bgsnap_reader_region(a->r, i, &ra, sizeof ra);
		bgsnap_reader_region(b->r, i, &rb, sizeof rb);
		if (ra.addr != rb.addr) {
			printf("region '%s': address differs (0x%" PRIx64 " vs 0x%" PRIx64 ")\n", ra.name, ra.addr, rb.addr);
			differ = 1;
		}
		int64_t n = diff_region(a, b, i, ra.name, ra.size / a->fi.page_size);
		if (n < 0)
			return -1;
		differ |= n > 0;
	}
	return differ;
}

/* State blobs, by name, both ways; returns 1 if any differ. */
static int states_differ(struct side *a, struct side *b)
{
	int differ = 0;
	for (int k = 0; k < 2; k++) {
		struct side *x = k ? b : a, *y = k ? a : b;
		for (unsigned i = 0; i < x->fi.state_count; i++) {
			const char *name;
			const void *dx, *dy;
			size_t lx, ly;
			if (bgsnap_reader_state(x->r, i, &name, &dx, &lx) < 0)
				continue;
			if (bgsnap_reader_find_state(y->r, name, &dy, &ly) < 0) {
				printf("state '%s': only in %s\n", name, x->path);
				differ = 1;
			} else if (!k && (lx != ly || memcmp(dx, dy, lx))) {
				printf("state '%s': differs (%zu vs %zu bytes)\n", name, lx, ly);
				differ = 1;
			}
		}
	}
	return differ;
}

int cmd_diff(int argc, char **argv)
{
	enum progress_mode mode;
	int rc = progress_only_options(argc, argv, &mode, usage, 2, "two files are required");
	if (rc >= 0)
		return rc;
	struct side a = { .path = argv[optind] }, b = { .path = argv[optind + 1] };
	a.r = cli_open_snapshot(a.path);
	b.r = a.r ? cli_open_snapshot(b.path) : NULL;
	if (!b.r) {
		bgsnap_reader_close(a.r);
		return EXIT_FAIL;
	}
	bgsnap_reader_info(a.r, &a.fi, sizeof a.fi);
	bgsnap_reader_info(b.r, &b.fi, sizeof b.fi);
	struct progress bar;
	progress_begin(&bar, mode, "diff", a.fi.pages_total * a.fi.page_size);
	a.bar = &bar;
	int differ = layout_differs(&a, &b);
	if (!differ)
		differ = regions_differ(&a, &b);
	progress_end(&bar);
	if (differ >= 0)
		differ |= states_differ(&a, &b);
	bgsnap_reader_close(a.r);
	bgsnap_reader_close(b.r);
	if (differ < 0)
		return EXIT_FAIL;
	printf("%s\n", differ ? "snapshots differ" : "snapshots are identical");
	return differ ? EXIT_FAIL : EXIT_OK;
}
