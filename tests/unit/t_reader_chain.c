/*
 * t_reader_chain - chains of snapshot files read as one image.  Chains of
 * 1, 2 and 10 files (raw and compressed), opened by their last file (the
 * parents found by id in the directory) and explicitly: read_region,
 * read_page, page_run, eager restore (fresh and populated targets) and lazy
 * restore all equal the memory of the last snapshot; info reports the
 * lineage; every link verifies.  And the chains that must be refused, each
 * with a message naming the file: a missing parent (-ENOENT, its id and
 * the directory), a parent with the right id but another checksum, a
 * foreign parent (another chain's file at the same depth), an oldest file
 * that is incremental, a region table that differs, a file naming itself,
 * a loop; a corrupt middle file opens, but its verify names the offset and
 * a read through it names the file.
 * timeout: 240
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgsnap.h"
#include "chaingen.h"
#include "format/le.h"
#include "testutil.h"

static char err[1024];

static void make_dir(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "%s/%s", tu_tmpdir(), name);
	CHECK(mkdir(dir, 0700) == 0, "mkdir %s: %s", dir, strerror(errno));
}

/* Every way of reading r gives the memory of s. */
static void check_image(bgsnap_reader *r, const struct fg_spec *s, const char *what)
{
	for (unsigned i = 0; i < s->nregions; i++) {
		size_t len = s->pages[i] * TU_PAGE;
		uint8_t *d = malloc(len), pg[TU_PAGE];
		CHECK_RC(bgsnap_reader_read_region(r, i, d, len, 0), 0, "%s: read_region %u: %s", what, i,
		         bgsnap_reader_errmsg(r));
		for (uint64_t p = 0; p < s->pages[i]; p++)
			CHECK(!memcmp(d + p * TU_PAGE, s->mem[i] + p * TU_PAGE, TU_PAGE),
			      "%s: read_region: page %llu of region %u differs", what, (unsigned long long)p, i);
		for (uint64_t p = 0; p < s->pages[i]; p += 1 + p % 5) {
			CHECK_RC(bgsnap_reader_read_page(r, i, p, pg), 0, "%s: read_page: %s", what, bgsnap_reader_errmsg(r));
			CHECK(!memcmp(pg, s->mem[i] + p * TU_PAGE, TU_PAGE), "%s: read_page %llu of region %u differs", what,
			      (unsigned long long)p, i);
			struct bgsnap_record rec;
			CHECK_RC(bgsnap_reader_page_run(r, i, p, &rec), 0, "%s: page_run", what);
			CHECK(rec.first_page <= p && p < rec.first_page + rec.count, "%s: page_run of %llu: %llu+%llu", what,
			      (unsigned long long)p, (unsigned long long)rec.first_page, (unsigned long long)rec.count);
		}
		free(d);
	}
}

/* Eager restore into fresh, populated (read in place) and THP-eligible
 * fresh memory (read in place), lazy into fresh. */
static void check_restore(bgsnap_reader *r, const struct fg_spec *s, const char *what)
{
	for (int mode = 0; mode < 4; mode++) {
		struct bgsnap_restore_target t[FG_MAX_REGIONS];
		for (unsigned i = 0; i < s->nregions; i++) {
			size_t len = s->pages[i] * TU_PAGE;
			t[i] = (struct bgsnap_restore_target){ i, tu_map_anon(len), len };
			if (mode == 1)
				memset(t[i].dst, 0xa5, len);
			if (mode == 3)
				CHECK(madvise(t[i].dst, len, MADV_HUGEPAGE) == 0, "madvise: %s", strerror(errno));
		}
		if (mode != 2) {
			CHECK_RC(bgsnap_restore_reader(r, t, s->nregions, 2, err, sizeof(err)), 0, "%s: restore: %s", what,
			         err);
		} else {
			bgsnap_lazy *l;
			int rc = bgsnap_lazy_restore_start(&l, r, t, s->nregions, err, sizeof(err));
			if (rc == -ENOSYS || rc == -EPERM) {
				printf("note: no lazy restore here: %s\n", err);
			} else {
				CHECK_RC(rc, 0, "%s: lazy start: %s", what, err);
				/* Touch a few pages first: the handler serves them. */
				volatile uint8_t sink = 0;
				for (unsigned i = 0; i < s->nregions; i++)
					sink ^= ((volatile uint8_t *)t[i].dst)[(s->pages[i] / 2) * TU_PAGE];
				(void)sink;
				CHECK_RC(bgsnap_lazy_wait(l), 0, "%s: lazy: %s", what, bgsnap_lazy_errmsg(l));
				bgsnap_lazy_free(l);
			}
		}
		for (unsigned i = 0; i < s->nregions; i++) {
			for (uint64_t p = 0; p < s->pages[i]; p++)
				CHECK(!memcmp((uint8_t *)t[i].dst + p * TU_PAGE, s->mem[i] + p * TU_PAGE, TU_PAGE),
				      "%s: restore mode %d: page %llu of region %u differs", what, mode, (unsigned long long)p, i);
			munmap(t[i].dst, t[i].len);
		}
	}
}

static void check_chain(unsigned links, int compress)
{
	char dir[600], what[64], name[32];
	snprintf(what, sizeof(what), "chain of %u%s", links, compress ? " compressed" : "");
	snprintf(name, sizeof(name), "c%u_%d", links, compress);
	make_dir(dir, sizeof(dir), name);
	struct fg_spec s;
	fg_default(&s);
	s.compress = compress;
	s.text_regions = compress ? ~0u : 0;
	fg_build(&s);
	static struct cg_chain c;
	cg_write(&s, dir, "snap", links, 6, 7 + links, &c);

	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, c.path[links - 1], err, sizeof(err)), 0, "%s: open: %s", what, err);
	CHECK(bgsnap_reader_chain_len(r) == links, "%s: chain_len %u", what, bgsnap_reader_chain_len(r));
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.version == 3 && fi.depth == links - 1 && fi.incremental == (links > 1), "%s: info v%u depth %u inc %d",
	      what, fi.version, fi.depth, fi.incremental);
	CHECK(!memcmp(fi.id, c.lin[links - 1].id, 16) && !memcmp(fi.parent_id, c.lin[links - 1].parent_id, 16) &&
	      fi.parent_file_crc == c.lin[links - 1].parent_file_crc, "%s: info lineage differs", what);
	for (unsigned k = 0; k < links; k++) {
		bgsnap_reader *l = bgsnap_reader_chain_link(r, k);
		CHECK(l && !strcmp(bgsnap_reader_path(l), c.path[k]), "%s: link %u is %s", what, k,
		      l ? bgsnap_reader_path(l) : "NULL");
		CHECK_RC(bgsnap_reader_verify(l), 0, "%s: verify link %u: %s", what, k, bgsnap_reader_errmsg(l));
	}
	CHECK(!bgsnap_reader_chain_link(r, links), "%s: a link past the end", what);
	if (links >= 3) {
		/* A middle link alone holds some pages only: never restored alone. */
		bgsnap_reader *l = bgsnap_reader_chain_link(r, 1);
		size_t len = s.pages[2] * TU_PAGE;
		uint8_t *d = tu_map_anon(len);
		struct bgsnap_restore_target t = { 2, d, len };
		CHECK_RC(bgsnap_reader_read_region(l, 2, d, len, 0), -EINVAL, "%s: read_region of a link alone", what);
		CHECK_RC(bgsnap_restore_reader(l, &t, 1, 1, err, sizeof(err)), -EINVAL, "%s: restore of a link alone", what);
		CHECK(strstr(err, "without its chain"), "%s: restore of a link: '%s'", what, err);
		munmap(d, len);
	}
	check_image(r, &s, what);
	check_restore(r, &s, what);
	/* Merged into one full file: the same image, restored the same. */
	char merged[700];
	snprintf(merged, sizeof(merged), "%s/merged.bgs", dir);
	int fd = open(merged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", merged);
	CHECK_RC(bgsnap_reader_write_full(r, fd, compress, err, sizeof(err)), 0, "%s: write_full: %s", what, err);
	close(fd);
	bgsnap_reader_close(r);
	CHECK_RC(bgsnap_reader_open(&r, merged, err, sizeof(err)), 0, "%s: merged: %s", what, err);
	CHECK_RC(bgsnap_reader_verify(r), 0, "%s: merged: %s", what, bgsnap_reader_errmsg(r));
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.version == (compress ? 2u : 1u) && bgsnap_reader_chain_len(r) == 1, "%s: merged is v%u", what,
	      fi.version);
	check_image(r, &s, "merged");
	check_restore(r, &s, "merged");
	bgsnap_reader_close(r);

	const char *paths[CG_MAX_LINKS];
	for (unsigned k = 0; k < links; k++)
		paths[k] = c.path[k];
	CHECK_RC(bgsnap_reader_open_chain(&r, paths, links, err, sizeof(err)), 0, "%s: open_chain: %s", what, err);
	check_image(r, &s, what);
	bgsnap_reader_close(r);
	fg_free(&s);
	printf("ok: %s\n", what);
}

static void expect_open(const char *path, int want, const char *m1, const char *m2, const char *what)
{
	bgsnap_reader *r = (bgsnap_reader *)1;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), want, "%s: opened (%s)", what, err);
	CHECK(!r, "%s: *out not NULL on failure", what);
	CHECK(strstr(err, m1) && (!m2 || strstr(err, m2)), "%s: message '%s' lacks '%s' / '%s'", what, err, m1,
	      m2 ? m2 : "");
	printf("ok: %-28s %s\n", what, err);
}

static void hex(const uint8_t *id, char *out)
{
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", id[i]);
}

static void bad_chains(void)
{
	struct fg_spec s;
	char dir[600], hx[33];
	static struct cg_chain a, b;

	/* A missing parent. */
	make_dir(dir, sizeof(dir), "missing");
	fg_default(&s);
	fg_build(&s);
	cg_write(&s, dir, "a", 3, 5, 100, &a);
	CHECK(unlink(a.path[1]) == 0, "unlink");
	hex(a.lin[1].id, hx);
	expect_open(a.path[2], -ENOENT, hx, dir, "missing parent");

	/* The parent's id, another file: same ids, other memory. */
	make_dir(dir, sizeof(dir), "crc");
	cg_write(&s, dir, "a", 3, 5, 200, &a);
	fg_free(&s);
	fg_default(&s);
	s.seed = 4242;
	fg_build(&s);
	char bdir[600];
	make_dir(bdir, sizeof(bdir), "crc_b");
	cg_write(&s, bdir, "b", 3, 5, 200, &b);
	CHECK(!memcmp(a.lin[1].id, b.lin[1].id, 16) && a.crc[1] != b.crc[1], "same ids, other checksums expected");
	CHECK(rename(b.path[1], a.path[1]) == 0, "rename");
	expect_open(a.path[2], -EBADMSG, a.path[1], "checksum", "parent crc mismatch");

	/* A foreign parent at the same depth, given explicitly. */
	make_dir(dir, sizeof(dir), "foreign");
	cg_write(&s, dir, "a", 3, 5, 300, &a);
	cg_write(&s, dir, "b", 3, 5, 301, &b);
	const char *mixed[3] = { a.path[0], b.path[1], a.path[2] };
	bgsnap_reader *r = (bgsnap_reader *)1;
	CHECK_RC(bgsnap_reader_open_chain(&r, mixed, 3, err, sizeof(err)), -EBADMSG, "foreign parent opened");
	CHECK(!r && strstr(err, b.path[1]), "foreign parent: message '%s' does not name %s", err, b.path[1]);
	printf("ok: %-28s %s\n", "foreign parent", err);
	/* The same two chains in one directory open each their own. */
	CHECK_RC(bgsnap_reader_open(&r, a.path[2], err, sizeof(err)), 0, "two chains in a directory: %s", err);
	CHECK(!strcmp(bgsnap_reader_path(bgsnap_reader_chain_link(r, 1)), a.path[1]), "wrong parent chosen");
	bgsnap_reader_close(r);

	/* The oldest file given is incremental. */
	const char *tail[2] = { a.path[1], a.path[2] };
	CHECK_RC(bgsnap_reader_open_chain(&r, tail, 2, err, sizeof(err)), -EBADMSG, "chain without its full file");
	CHECK(strstr(err, a.path[1]) && strstr(err, "oldest"), "oldest incremental: '%s'", err);

	/* A region table that differs from the parent's. */
	make_dir(dir, sizeof(dir), "regions");
	cg_write(&s, dir, "a", 2, 5, 400, &a);
	uint8_t addr[8];
	le64_store(addr, 0x7700000000ull);
	cg_patch_header(a.path[1], 16 + 40 + 4 + 4, addr, 8);   /* region 0 "ram0": its address */
	expect_open(a.path[1], -EBADMSG, a.path[0], "region 0", "regions differ");

	/* A file naming itself as its parent. */
	make_dir(dir, sizeof(dir), "self");
	cg_write(&s, dir, "a", 2, 5, 500, &a);
	cg_patch_header(a.path[1], 16 + 16, a.lin[1].id, 16);
	expect_open(a.path[1], -EBADMSG, "itself", NULL, "names itself");

	/* A loop: the full file turned into a child of its own child. */
	make_dir(dir, sizeof(dir), "loop");
	cg_write(&s, dir, "a", 2, 5, 600, &a);
	uint8_t lin[24];
	memcpy(lin, a.lin[1].id, 16);
	le32_store(lin + 16, a.crc[1]);
	le32_store(lin + 20, 2);
	cg_patch_header(a.path[0], 16 + 16, lin, 24);
	expect_open(a.path[1], -EBADMSG, a.path[0], NULL, "loop");

	/* A corrupt middle file: opens, verify names the offset, a read of
	 * its pages names the file. */
	make_dir(dir, sizeof(dir), "corrupt");
	cg_write(&s, dir, "a", 3, 5, 700, &a);
	CHECK_RC(bgsnap_reader_open(&r, a.path[2], err, sizeof(err)), 0, "%s", err);
	bgsnap_reader *mid = bgsnap_reader_chain_link(r, 1);
	struct bgsnap_record rec;
	uint64_t off = 0, poff = 0;
	unsigned preg = 0;
	while (!off && bgsnap_reader_next(mid, &rec) > 0)
		if (rec.kind == BGSNAP_REC_PAGES) {
			off = rec.offset;
			preg = rec.region;
			poff = rec.first_page;
		}
	CHECK(off, "no PAGES record in the middle file");
	/* The page must be the middle file's in the image for the read check. */
	CHECK_RC(bgsnap_reader_page_run(r, preg, poff, &rec), 0, "page_run");
	int in_image = rec.offset == off;
	bgsnap_reader_close(r);
	size_t n;
	uint8_t *f = fg_read_file(a.path[1], &n);
	f[off + 16 + 24 + 100] ^= 1;
	fg_write_file(a.path[1], f, n);
	free(f);
	CHECK_RC(bgsnap_reader_open(&r, a.path[2], err, sizeof(err)), 0, "corrupt middle: open: %s", err);
	mid = bgsnap_reader_chain_link(r, 1);
	char want[64];
	snprintf(want, sizeof(want), "offset %llu", (unsigned long long)off);
	CHECK_RC(bgsnap_reader_verify(mid), -EBADMSG, "corrupt middle file verified");
	CHECK(strstr(bgsnap_reader_errmsg(mid), want), "verify: '%s' lacks '%s'", bgsnap_reader_errmsg(mid), want);
	CHECK_RC(bgsnap_reader_verify(bgsnap_reader_chain_link(r, 2)), 0, "the last file is intact");
	if (in_image) {
		uint8_t pg[TU_PAGE];
		CHECK_RC(bgsnap_reader_read_page(r, preg, poff, pg), -EBADMSG, "corrupt page read");
		CHECK(strstr(bgsnap_reader_errmsg(r), a.path[1]), "read: '%s' does not name %s", bgsnap_reader_errmsg(r),
		      a.path[1]);
	}
	printf("ok: %-28s %s\n", "corrupt middle file", bgsnap_reader_errmsg(mid));
	bgsnap_reader_close(r);
	fg_free(&s);
}

int main(void)
{
	check_chain(1, 0);
	check_chain(2, 0);
	check_chain(10, 0);
	check_chain(10, 1);
	bad_chains();
	return 0;
}
