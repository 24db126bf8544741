/*
 * t_chain_gen - writes chains of snapshot files with known content through
 * the real encoder, for the shell tests (t_chain_cli.sh) and by hand:
 *   t_chain_gen --dir DIR --links N [--prefix P] [--seed S] [--compress] [--expect EDIR]
 * writes DIR/P-000.bgs (full) .. DIR/P-<N-1>.bgs (incremental); --expect
 * writes the last image's regions as EDIR/ram0.raw .. (what `bgsnap extract`
 * of the last file must give).  With no arguments it is a test itself: a
 * chain of 3 written, its last file's lineage read back through the public
 * reader.
 */
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "chaingen.h"
#include "testutil.h"

static void self_test(void)
{
	struct fg_spec s;
	fg_default(&s);
	fg_build(&s);
	static struct cg_chain c;
	cg_write(&s, tu_tmpdir(), "t", 3, 4, 9, &c);
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, c.path[2], err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.depth == 2 && fi.incremental && bgsnap_reader_chain_len(r) == 3, "depth %u chain %u", fi.depth,
	      bgsnap_reader_chain_len(r));
	bgsnap_reader_close(r);
	fg_free(&s);
	printf("ok: a chain of 3\n");
}

int main(int argc, char **argv)
{
	if (argc == 1) {
		self_test();
		return 0;
	}
	const char *dir = NULL, *prefix = "snap", *expect = NULL;
	unsigned links = 0;
	uint64_t seed = 1;
	struct fg_spec s;
	fg_default(&s);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(o, "--compress")) {
			s.compress = FMT_COMPRESS_ZSTD;
			s.text_regions = ~0u;
			continue;
		}
		if (!v)
			FAIL("option %s needs a value", o);
		if (!strcmp(o, "--dir"))
			dir = v;
		else if (!strcmp(o, "--links"))
			links = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(o, "--prefix"))
			prefix = v;
		else if (!strcmp(o, "--seed"))
			seed = strtoull(v, NULL, 0);
		else if (!strcmp(o, "--expect"))
			expect = v;
		else
			FAIL("unknown option %s", o);
		i++;
	}
	CHECK(dir && links >= 1 && links <= CG_MAX_LINKS, "--dir DIR and --links 1..%d are required", CG_MAX_LINKS);
	s.seed = seed;
	fg_build(&s);
	static struct cg_chain c;
	cg_write(&s, dir, prefix, links, 6, seed, &c);
	for (unsigned i = 0; expect && i < s.nregions; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s.raw", expect, s.names[i]);
		fg_write_file(p, s.mem[i], s.pages[i] * TU_PAGE);
	}
	fg_free(&s);
	return 0;
}
