/*
 * gen_corpus.c - writes the fuzz seed corpus: small snapshots of several
 * shapes made by the real encoder (tests/unit/fmtgen.c), so the fuzzers
 * start from valid files and mutate from there; and chains (version 3,
 * tests/unit/chaingen.c): a full file, an incremental one alone, and whole
 * chains as their files one after the other, which fuzz_reader splits
 * back into files at each magic.
 *   gen_corpus DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgsnap.h"
#include "chaingen.h"
#include "fmtgen.h"
#include "format/format.h"
#include "testutil.h"

/* Appends the file at `path` to *buf (*len bytes so far) and removes it. */
static void append(uint8_t **buf, size_t *len, const char *path)
{
	size_t n;
	uint8_t *b = fg_read_file(path, &n);
	uint8_t *g = realloc(*buf, *len + n);
	if (!g)
		FAIL("out of memory");
	memcpy(g + *len, b, n);
	*buf = g;
	*len += n;
	free(b);
	unlink(path);
}

/* Chain seeds numbered from `k`: a full v3 file, an incremental file
 * alone, a chain of 3 and a compressed chain of 2 as concatenations. */
static size_t chain_seeds(const char *dir, size_t k)
{
	size_t made = 0;
	for (int compress = 0; compress <= 1; compress++) {
		if (compress && !bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD))
			break;
		struct fg_spec s;
		fg_default(&s);
		s.pages[1] = 12;
		s.pages[2] = 20;
		s.nstates = 1;
		s.compress = compress ? FMT_COMPRESS_ZSTD : 0;
		s.text_regions = compress ? 1 : 0;
		fg_build(&s);
		static struct cg_chain c;
		unsigned links = compress ? 2 : 3;
		cg_write(&s, dir, "chain", links, 4, 77 + (uint64_t)compress, &c);
		char path[4096];
		for (unsigned i = 0; !compress && i < 2; i++) {   /* the full file, an incremental one, alone */
			size_t len;
			uint8_t *b = fg_read_file(c.path[i], &len);
			snprintf(path, sizeof(path), "%s/seed-%02zu.bgs", dir, k + made++);
			fg_write_file(path, b, len);
			free(b);
		}
		snprintf(path, sizeof(path), "%s/seed-%02zu.bgs", dir, k + made++);
		uint8_t *all = NULL;
		size_t len = 0;
		for (unsigned i = 0; i < links; i++)
			append(&all, &len, c.path[i]);
		fg_write_file(path, all, len);
		free(all);
		fg_free(&s);
	}
	return made;
}

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
		int aligned;                         /* version 4: PAD records        */
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
		{ 2, { 3, 20 }, 4, 7, 1, 6, 0, 1 },  /* page-aligned: PADs, PAGES    */
		{ 2, { 9, 4 }, 3, 4, 1, 2, 1, 1 },   /* page-aligned and compressed   */
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
		s.aligned = shapes[k].aligned;
		fg_build(&s);
		char path[4096];
		snprintf(path, sizeof(path), "%s/seed-%02zu.bgs", argv[1], k);
		fg_write_path(&s, path);
		fg_free(&s);
	}
	size_t n = sizeof(shapes) / sizeof(shapes[0]);
	n += chain_seeds(argv[1], n);
	printf("gen_corpus: %zu seeds in %s\n", n, argv[1]);
	return 0;
}
