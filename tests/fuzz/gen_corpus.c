/*
 * gen_corpus.c - writes the fuzz seed corpus: small snapshots of several
 * shapes made by the real encoder (tests/unit/fmtgen.c), so the fuzzers
 * start from valid files and mutate from there.
 *   gen_corpus DIR
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "format/format.h"
#include "testutil.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	mkdir(argv[1], 0700);
	static const struct {
		unsigned nregions;
		uint64_t pages[3];
		unsigned zero_every, max_run, nstates;
		size_t state0;
		int compress;                        /* CPAGES: text-like pages, zstd */
	} shapes[] = {
		{ 1, { 1 }, 0, 1, 0, 0 },            /* one data page, no state       */
		{ 1, { 2 }, 2, 1, 1, 5 },            /* data + zero page, a state     */
		{ 2, { 3, 1 }, 2, 2, 2, 40 },        /* two regions, two states       */
		{ 3, { 1, 1, 1 }, 1, 1, 1, 0 },      /* all zero, an empty state      */
		{ 1, { 8 }, 3, 3, 0, 0 },            /* runs in random order          */
		{ 1, { 5000 }, 1, 5000, 1, 3 },      /* one long ZERO run             */
		{ 2, { 1, 300 }, 1, 300, 0, 0 },     /* ZERO runs split by the caller */
		{ 2, { 2, 2 }, 0, 2, 3, 1 },         /* two-page PAGES records        */
		{ 1, { 3 }, 0, 3, 1, 4, 1 },         /* one small CPAGES record       */
		{ 2, { 9, 4 }, 3, 4, 0, 0, 1 },      /* CPAGES, ZERO, PAGES fallback  */
	};
	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		struct fg_spec s;
		fg_default(&s);
		s.nregions = shapes[k].nregions;
		memcpy(s.pages, shapes[k].pages, sizeof(shapes[k].pages));
		s.zero_every = shapes[k].zero_every;
		s.max_run = shapes[k].max_run;
		s.nstates = shapes[k].nstates;
		s.state_len[0] = shapes[k].state0;
		s.state_len[1] = 2;
		s.state_len[2] = 1;
		s.seed = k + 1;
		if (shapes[k].compress) {
			if (!bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD))
				continue;   /* a build without libzstd: no compressed seeds */
			s.compress = FMT_COMPRESS_ZSTD;
			s.text_regions = 1;   /* region 1 stays random: stored as PAGES */
		}
		fg_build(&s);
		char path[4096];
		snprintf(path, sizeof(path), "%s/seed-%02zu.bgs", argv[1], k);
		fg_write_path(&s, path);
		fg_free(&s);
	}
	printf("gen_corpus: %zu seeds in %s\n", sizeof(shapes) / sizeof(shapes[0]), argv[1]);
	return 0;
}
