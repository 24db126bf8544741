/*
 * t_format_gen - writes snapshot files with known content through the real
 * encoder, for the shell tests (t_format_cli.sh) and by hand:
 *   t_format_gen --out PATH [--seed N] [--pages N] [--zero-every N] [--states N] [--change PAGE]
 *                [--text] [--compress]
 * --text makes the pages text-like (compressible); --compress writes CPAGES;
 * --adaptive-mix writes them with an adaptive writer told that the
 * destination is slow for every other run: CPAGES and PAGES mixed.
 * --change PAGE alters one byte of that page of region ram1 (for diff tests).
 * With no arguments it is a test itself: several shapes (one page, all zero,
 * no zero page, long runs past the writer's record cap, no state) each
 * written and verified.
 */
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "format/format.h"
#include "testutil.h"

static void self_test(void)
{
	struct { unsigned nregions; uint64_t p0, p1; unsigned zero_every, max_run, nstates; } shapes[] = {
		{ 1, 1, 0, 0, 1, 0 },        /* one page */
		{ 1, 10, 0, 1, 10, 1 },      /* all zero */
		{ 2, 700, 3, 0, 700, 0 },    /* runs longer than FMT_MAX_RUN_PAGES */
		{ 2, 1000, 9, 2, 1000, 3 },  /* alternating zero / data */
	};
	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		struct fg_spec s;
		fg_default(&s);
		s.nregions = shapes[k].nregions;
		s.pages[0] = shapes[k].p0;
		s.pages[1] = shapes[k].p1;
		s.zero_every = shapes[k].zero_every;
		s.max_run = shapes[k].max_run;
		s.nstates = shapes[k].nstates;
		s.state_len[2] = 70000;
		fg_build(&s);
		char path[600];
		snprintf(path, sizeof(path), "%s/s%zu.bgs", tu_tmpdir(), k);
		fg_write_path(&s, path);
		bgsnap_reader *r;
		char err[600];
		CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "shape %zu: %s", k, err);
		CHECK_RC(bgsnap_reader_verify(r), 0, "shape %zu: %s", k, bgsnap_reader_errmsg(r));
		for (unsigned i = 0; i < s.nregions; i++) {
			uint8_t *d = malloc(s.pages[i] * TU_PAGE);
			CHECK_RC(bgsnap_reader_read_region(r, i, d, s.pages[i] * TU_PAGE, 0), 0, "shape %zu", k);
			CHECK(!memcmp(d, s.mem[i], s.pages[i] * TU_PAGE), "shape %zu region %u differs", k, i);
			free(d);
		}
		bgsnap_reader_close(r);
		fg_free(&s);
	}
	printf("ok: %zu shapes\n", sizeof(shapes) / sizeof(shapes[0]));
}

int main(int argc, char **argv)
{
	if (argc == 1) {
		self_test();
		return 0;
	}
	struct fg_spec s;
	fg_default(&s);
	const char *out = NULL;
	long change = -1;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(o, "--text"))
			s.text_regions = ~0u;
		else if (!strcmp(o, "--compress"))
			s.compress = FMT_COMPRESS_ZSTD;
		else if (!strcmp(o, "--adaptive-mix"))
			s.compress = FMT_COMPRESS_ZSTD, s.adaptive_mix = 1;
		else if (!v)
			FAIL("option %s needs a value", o);
		else if (!strcmp(o, "--out"))
			out = v;
		else if (!strcmp(o, "--seed"))
			s.seed = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--pages"))
			s.pages[2] = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--zero-every"))
			s.zero_every = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(o, "--states"))
			s.nstates = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(o, "--change"))
			change = strtol(v, NULL, 0);
		else
			FAIL("unknown option %s", o);
		i += strcmp(o, "--text") && strcmp(o, "--compress") && strcmp(o, "--adaptive-mix");
	}
	CHECK(out, "--out PATH is required");
	fg_build(&s);
	if (change >= 0 && (uint64_t)change < s.pages[1])
		s.mem[1][(size_t)change * TU_PAGE + 100] ^= 0x40;
	fg_write_path(&s, out);
	fg_free(&s);
	return 0;
}
