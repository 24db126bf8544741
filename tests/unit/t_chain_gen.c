/*
 * t_chain_gen - writes chains of snapshot files with known content through
 * the real encoder, for the shell tests (t_chain_cli.sh) and by hand:
 *   t_chain_gen --dir DIR --links N [--prefix P] [--seed S] [--compress] [--expect EDIR]
 *   t_chain_gen --dir DIR --split FILE [--prefix P]
 * writes DIR/P-000.bgs (full) .. DIR/P-<N-1>.bgs (incremental); --expect
 * writes the last image's regions as EDIR/ram0.raw .. (what `bgsnap extract`
 * of the last file must give).  --split turns snapshot FILE into a chain of
 * two with the same image: a full version 3 file, and an incremental one
 * holding every third page again and FILE's state blobs (a real program's
 * snapshot, such as the VM's, read back through a chain).  With no arguments it is a test itself: a
 * chain of 3 written, its last file's lineage read back through the public
 * reader.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <fcntl.h>
#include <unistd.h>

#include "bgsnap.h"
#include "chaingen.h"
#include "sink/sink.h"
#include "testutil.h"

/* Link k of the split of r (image in mem[]) into `path`; its crc out. */
static void split_link(bgsnap_reader *r, uint8_t **mem, const struct fmt_region *regs, unsigned nreg,
                       const struct fmt_lineage *lin, const char *path, uint32_t *crc)
{
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "open %s", path);
	struct sink sk;
	struct bgsnap_err e = { 0, "" };
	struct fmt_writer w;
	CHECK_RC(sink_open_fd(&sk, fd, &e), 0, "sink: %s", e.msg);
	struct fmt_out out = { &sk, sink_out_writev, sink_out_flush, SINK_IOV_MAX, NULL };
	CHECK_RC(fmtw_begin_lineage(&w, &out, regs, nreg, NULL, lin, &e), 0, "begin: %s", e.msg);
	int inc = lin->depth > 0;
	for (unsigned i = 0; i < nreg; i++) {
		uint64_t pages = regs[i].size / TU_PAGE;
		for (uint64_t p = 0; p < pages; p += inc ? 3 : 256) {
			uint64_t n = inc ? 1 : (pages - p < 256 ? pages - p : 256);
			CHECK_RC(fmtw_pages(&w, i, p, n, mem[i] + p * TU_PAGE), 0, "pages: %s", e.msg);
		}
	}
	for (unsigned i = 0; i < fi.state_count; i++) {
		const char *name;
		const void *d;
		size_t len;
		CHECK_RC(bgsnap_reader_state(r, i, &name, &d, &len), 0, "state %u", i);
		CHECK_RC(fmtw_state(&w, name, d, len), 0, "state: %s", e.msg);
	}
	struct fmt_meta meta = { fi.method, fi.created_unix_ns, fi.pause_us };
	CHECK_RC(fmtw_finish(&w, &meta), 0, "finish: %s", e.msg);
	*crc = w.file_crc;
	fmtw_free(&w);
	sink_abort(&sk);
	close(fd);
}

static void split(const char *file, const char *dir, const char *prefix)
{
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, file, err, sizeof(err)), 0, "%s: %s", file, err);
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.region_count <= 16, "%s: %u regions", file, fi.region_count);
	struct fmt_region regs[16];
	uint8_t *mem[16];
	for (unsigned i = 0; i < fi.region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		regs[i] = (struct fmt_region){ ri.name, ri.addr, ri.size };
		mem[i] = tu_map_anon(ri.size);
		CHECK_RC(bgsnap_reader_read_region(r, i, mem[i], ri.size, BGSNAP_READ_DST_ZEROED), 0, "%s: %s", file,
		         bgsnap_reader_errmsg(r));
	}
	struct fmt_lineage lin[2];
	uint32_t crc[2];
	char path[2][4096];
	for (unsigned k = 0; k < 2; k++) {
		memset(&lin[k], 0, sizeof(lin[k]));
		cg_id(lin[k].id, (uint64_t)getpid(), k);
		if (k) {
			memcpy(lin[k].parent_id, lin[0].id, 16);
			lin[k].parent_file_crc = crc[0];
			lin[k].depth = 1;
		}
		snprintf(path[k], sizeof(path[k]), "%s/%s-%03u.bgs", dir, prefix, k);
		split_link(r, mem, regs, fi.region_count, &lin[k], path[k], &crc[k]);
	}
	for (unsigned i = 0; i < fi.region_count; i++)
		munmap(mem[i], regs[i].size);
	bgsnap_reader_close(r);
}

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
	const char *dir = NULL, *prefix = "snap", *expect = NULL, *from = NULL;
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
		else if (!strcmp(o, "--split"))
			from = v;
		else
			FAIL("unknown option %s", o);
		i++;
	}
	if (from && dir) {
		split(from, dir, prefix);
		return 0;
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
