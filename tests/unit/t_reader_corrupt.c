/*
 * t_reader_corrupt - the reader rejects every damaged copy of a small
 * snapshot: every truncation length, a bit flip in every byte, and crafted
 * files with one defect each (duplicate, missing or out-of-region page, bad
 * magic, version, flags, reserved fields, names, unknown or compressed record
 * types, index and trailer disagreements, trailing data).  Each is checked
 * through the random-access path (open + verify) and the stream path, and
 * the message must name an offset or the defect.
 * timeout: 300
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/crc32c.h"
#include "fmtgen.h"
#include "format/format.h"
#include "format/le.h"
#include "testutil.h"

static char path[512];
static int memfd = -1;

/* Returns 0 if both paths accept the file, else -EBADMSG-like code; the
 * messages of the two paths go to msg_rand / msg_stream. */
static int check_file(const void *buf, size_t len, char *msg_rand, char *msg_stream, size_t mlen)
{
	/* A memfd: cheap to rewrite thousands of times, opened by path. */
	CHECK(ftruncate(memfd, 0) == 0 && pwrite(memfd, buf, len, 0) == (ssize_t)len, "memfd write");
	int bad_rand = 0, bad_stream = 0;
	bgsnap_reader *r;
	msg_rand[0] = msg_stream[0] = 0;
	int rc = bgsnap_reader_open(&r, path, msg_rand, mlen);
	if (rc == 0) {
		rc = bgsnap_reader_verify(r);
		if (rc < 0)
			snprintf(msg_rand, mlen, "%s", bgsnap_reader_errmsg(r));
		bgsnap_reader_close(r);
	}
	bad_rand = rc < 0;
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s", path);
	rc = bgsnap_reader_open_stream(&r, fd, msg_stream, mlen);
	if (rc == 0) {
		rc = bgsnap_reader_verify(r);
		if (rc < 0)
			snprintf(msg_stream, mlen, "%s", bgsnap_reader_errmsg(r));
		bgsnap_reader_close(r);
	}
	close(fd);
	bad_stream = rc < 0;
	CHECK(bad_rand == bad_stream, "random access says %s, stream says %s (%s | %s)",
	      bad_rand ? "bad" : "good", bad_stream ? "bad" : "good", msg_rand, msg_stream);
	return bad_rand ? -EBADMSG : 0;
}

static void expect_bad(const void *buf, size_t len, const char *what, const char *want1, const char *want2)
{
	char m1[600], m2[600];
	int rc = check_file(buf, len, m1, m2, sizeof(m1));
	CHECK(rc < 0, "%s: accepted", what);
	CHECK(m1[0] && m2[0], "%s: empty message", what);
	for (int i = 0; i < 2; i++) {
		const char *m = i ? m2 : m1;
		CHECK(strstr(m, want1) || (want2 && strstr(m, want2)), "%s: message '%s' lacks '%s'%s%s", what, m,
		      want1, want2 ? " or " : "", want2 ? want2 : "");
	}
	printf("  %-24s file: %s\n  %-24s stream: %s\n", what, m1, "", m2);
}

/* ---- a raw encoder for crafted files (bypasses fmtw's own checks) ---- */
static uint8_t rb[1 << 20];
static size_t rlen;
static uint8_t ridx[64 * 32];
static unsigned nidx, nstates;
static uint64_t rzero;
static uint64_t rtotal;
static uint64_t a_pages = 2;   /* size of region "a" in pages */

static size_t raw_rec(uint32_t type, uint32_t flags, const void *payload, size_t plen)
{
	size_t off = rlen;
	le32_store(rb + rlen, type);
	le32_store(rb + rlen + 4, flags);
	le64_store(rb + rlen + 8, plen);
	memcpy(rb + rlen + 16, payload, plen);
	le32_store(rb + rlen + 16 + plen, crc32c(0, rb + rlen, 16 + plen));
	rlen += 20 + plen;
	return off;
}

/* Regions: "a" 2 pages, "b" 1 page; version/reserved/name overridable. */
static void raw_begin(uint32_t version, uint32_t reserved, const char *name_a)
{
	rlen = nidx = nstates = 0;
	rzero = 0;
	rtotal = a_pages + 1;
	memcpy(rb, FMT_MAGIC, 8);
	rlen = 8;
	uint8_t h[128], *p = h;
	le32_store(p, version);
	le32_store(p + 4, 4096);
	le32_store(p + 8, 2);
	le32_store(p + 12, reserved);
	p += 16;
	const char *names[2] = { name_a, "b" };
	uint64_t sizes[2] = { a_pages * 4096, 4096 };
	for (int i = 0; i < 2; i++) {
		uint32_t nl = (uint32_t)strlen(names[i]);
		le32_store(p, nl);
		memcpy(p + 4, names[i], nl);
		p += 4 + nl;
		le64_store(p, 0x100000000ull * (uint64_t)(i + 1));
		le64_store(p + 8, sizes[i]);
		le32_store(p + 16, 0);
		p += 20;
	}
	raw_rec(FMT_REC_HEADER, 0, h, (size_t)(p - h));
}

static void raw_index_add(uint32_t kind, uint32_t region, uint64_t first, uint64_t count, uint64_t off)
{
	uint8_t *e = ridx + nidx++ * 32;
	le32_store(e, kind);
	le32_store(e + 4, region);
	le64_store(e + 8, first);
	le64_store(e + 16, count);
	le64_store(e + 24, off);
}

static void raw_run(uint32_t type, uint32_t flags, uint32_t region, uint64_t first, uint64_t count)
{
	static uint8_t p[24 + 4 * 4096];
	le32_store(p, region);
	le32_store(p + 4, 0);
	le64_store(p + 8, first);
	le64_store(p + 16, count);
	size_t dl = type == FMT_REC_PAGES || type == FMT_REC_CPAGES ? count * 4096 : 0;
	memset(p + 24, 0x5a + (int)first, dl);
	size_t off = raw_rec(type, flags, p, 24 + dl);
	raw_index_add(type, region, first, count, off);
	if (type == FMT_REC_ZERO)
		rzero += count;
}

static void raw_state(const char *name, const char *data)
{
	uint8_t p[256];
	uint32_t nl = (uint32_t)strlen(name);
	uint64_t dl = strlen(data);
	le32_store(p, nl);
	memcpy(p + 4, name, nl);
	le64_store(p + 4 + nl, dl);
	memcpy(p + 12 + nl, data, dl);
	size_t off = raw_rec(FMT_REC_STATE, 0, p, 12 + nl + dl);
	raw_index_add(FMT_REC_STATE, 0, 0, dl, off);
	nstates++;
}

/* Index and trailer; `tweak` alters the trailer payload before its crc. */
static void raw_finish(void (*tweak)(uint8_t *t))
{
	uint8_t p[8 + sizeof(ridx)];
	le64_store(p, nidx);
	memcpy(p + 8, ridx, nidx * 32);
	size_t io = raw_rec(FMT_REC_INDEX, 0, p, 8 + nidx * 32);
	uint8_t t[64];
	le64_store(t, io);
	le64_store(t + 8, rtotal);
	le64_store(t + 16, rzero);
	le32_store(t + 24, nstates);
	le32_store(t + 28, 5);
	le64_store(t + 32, 1);
	le64_store(t + 40, 2);
	le32_store(t + 48, crc32c(0, rb, rlen));
	le32_store(t + 52, 0);
	memcpy(t + 56, FMT_END_MAGIC, 8);
	if (tweak)
		tweak(t);
	raw_rec(FMT_REC_TRAILER, 0, t, 64);
}

static void good_body(void)
{
	raw_run(FMT_REC_PAGES, 0, 0, 1, 1);
	raw_state("cpu", "regs");
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_run(FMT_REC_PAGES, 0, 0, 0, 1);
}

static void tw_zero(uint8_t *t) { le64_store(t + 16, 0); }
static void tw_crc(uint8_t *t) { le32_store(t + 48, le32_load(t + 48) ^ 1); }
static void tw_reserved(uint8_t *t) { le32_store(t + 52, 1); }
static void tw_endmagic(uint8_t *t) { t[63] ^= 1; }
static void tw_index_off(uint8_t *t) { le64_store(t, le64_load(t) - 1); }

/* Big zero runs: the reader's coverage bitmap marks whole 32768-page chunks
 * without allocating them; duplicates must still be found inside them. */
static void big_runs(void)
{
	char m1[600], m2[600];
	a_pages = 70000;
	raw_begin(1, 0, "a");
	raw_run(FMT_REC_ZERO, 0, 0, 0, 70000);
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_finish(NULL);
	CHECK_RC(check_file(rb, rlen, m1, m2, sizeof(m1)), 0, "70000-page ZERO run rejected: %s | %s", m1, m2);

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_ZERO, 0, 0, 0, 70000);
	raw_run(FMT_REC_ZERO, 0, 0, 40000, 1);
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	rzero--;   /* a plausible trailer, so the duplicate itself is what fails */
	raw_finish(NULL);
	expect_bad(rb, rlen, "dup inside a full chunk", "two records", "page 40000 of region 'a' appears twice");

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_ZERO, 0, 0, 33000, 1);
	raw_run(FMT_REC_ZERO, 0, 0, 0, 70000);
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	rzero--;
	raw_finish(NULL);
	expect_bad(rb, rlen, "full run over a marked page", "two records", "page 33000 of region 'a' appears twice");

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_ZERO, 0, 0, 0, 69999);
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "last page missing", "pages 69999..69999 of region 'a'", "first: page 69999 of region 'a'");
	a_pages = 2;
}

static void crafted(void)
{
	char m1[600], m2[600];
	raw_begin(1, 0, "a");
	good_body();
	raw_finish(NULL);
	CHECK_RC(check_file(rb, rlen, m1, m2, sizeof(m1)), 0, "the crafted baseline is rejected: %s | %s", m1, m2);

	raw_begin(1, 0, "a");
	good_body();
	raw_run(FMT_REC_PAGES, 0, 0, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "duplicate page", "two records", "twice");

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_PAGES, 0, 0, 0, 1);
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "missing page", "in no record", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_run(FMT_REC_ZERO, 0, 1, 1, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "page outside its region", "outside region", NULL);

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_PAGES, 0, 0, 0, 3);
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "run past its region", "outside region", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(NULL);
	rb[0] ^= 0x80;
	expect_bad(rb, rlen, "bad magic", "magic", NULL);

	raw_begin(4, 0, "a");
	good_body();
	raw_finish(NULL);
	expect_bad(rb, rlen, "version 4", "version 4", NULL);

	/* Version 3 demands a LINEAGE block: a version 1 table is not one. */
	raw_begin(3, 0, "a");
	good_body();
	raw_finish(NULL);
	expect_bad(rb, rlen, "version 3 without lineage", "LINEAGE", NULL);

	raw_begin(1, 7, "a");
	good_body();
	raw_finish(NULL);
	expect_bad(rb, rlen, "header reserved", "reserved", NULL);

	raw_begin(1, 0, "a\n");
	good_body();
	raw_finish(NULL);
	expect_bad(rb, rlen, "control char in name", "printable", NULL);

	raw_begin(1, 0, "b");
	good_body();
	raw_finish(NULL);
	expect_bad(rb, rlen, "duplicate region name", "two regions named", NULL);

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_PAGES, 1, 0, 1, 1);
	raw_state("cpu", "regs");
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_run(FMT_REC_PAGES, 0, 0, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "record flags", "flags 0x1", NULL);

	raw_begin(1, 0, "a");
	raw_run(FMT_REC_CPAGES, 0, 0, 1, 1);
	raw_state("cpu", "regs");
	raw_run(FMT_REC_ZERO, 0, 1, 0, 1);
	raw_run(FMT_REC_PAGES, 0, 0, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "CPAGES", "unsupported encoding", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_run(9, 0, 0, 0, 1);
	raw_finish(NULL);
	expect_bad(rb, rlen, "unknown type", "unknown record type 9", "kind 9");

	raw_begin(1, 0, "a");
	good_body();
	raw_state("cpu", "again");
	raw_finish(NULL);
	expect_bad(rb, rlen, "duplicate state", "second state named", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(tw_zero);
	expect_bad(rb, rlen, "trailer zero count", "zero pages", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(tw_crc);
	expect_bad(rb, rlen, "whole-file crc", "whole-file checksum", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(tw_reserved);
	expect_bad(rb, rlen, "trailer reserved", "reserved", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(tw_endmagic);
	expect_bad(rb, rlen, "end magic", "end magic", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(tw_index_off);
	expect_bad(rb, rlen, "index offset", "offset", NULL);

	raw_begin(1, 0, "a");
	good_body();
	/* index entries in an order other than the file's */
	uint8_t tmp[32];
	memcpy(tmp, ridx, 32);
	memcpy(ridx, ridx + 32, 32);
	memcpy(ridx + 32, tmp, 32);
	raw_finish(NULL);
	expect_bad(rb, rlen, "index out of order", "INDEX", NULL);

	raw_begin(1, 0, "a");
	good_body();
	raw_finish(NULL);
	rb[rlen++] = 0;
	expect_bad(rb, rlen, "trailing garbage", "trailing data", NULL);
}

int main(void)
{
	memfd = memfd_create("corrupt", MFD_CLOEXEC);
	CHECK(memfd >= 0, "memfd_create: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	crafted();
	big_runs();
	printf("ok: crafted files\n");

	struct fg_spec s;
	fg_default(&s);
	s.nregions = 2;
	s.pages[0] = 3;
	s.pages[1] = 2;
	s.zero_every = 2;
	s.max_run = 2;
	s.nstates = 1;
	s.state_len[0] = 10;
	fg_build(&s);
	char orig_path[600];
	snprintf(orig_path, sizeof(orig_path), "%s/orig.bgs", tu_tmpdir());
	fg_write_path(&s, orig_path);
	size_t len;
	uint8_t *orig = fg_read_file(orig_path, &len);
	char m1[600], m2[600];
	CHECK_RC(check_file(orig, len, m1, m2, sizeof(m1)), 0, "intact file rejected: %s | %s", m1, m2);

	for (size_t l = 0; l < len; l++) {
		int rc = check_file(orig, l, m1, m2, sizeof(m1));
		CHECK(rc < 0, "truncated to %zu of %zu bytes: accepted", l, len);
		CHECK(strstr(m1, "offset") && strstr(m2, "offset"), "truncated to %zu: message without offset: %s | %s",
		      l, m1, m2);
	}
	printf("ok: all %zu truncations rejected\n", len);

	uint8_t *copy = malloc(len);
	for (size_t i = 0; i < len; i++) {
		memcpy(copy, orig, len);
		copy[i] ^= (uint8_t)(1u << (i % 8));
		int rc = check_file(copy, len, m1, m2, sizeof(m1));
		CHECK(rc < 0, "bit %zu of byte %zu flipped: accepted", i % 8, i);
		CHECK(strstr(m1, "offset") && strstr(m2, "offset"), "flip at %zu: message without offset: %s | %s", i, m1,
		      m2);
	}
	printf("ok: a bit flip in each of %zu bytes rejected\n", len);
	printf("sample message: %s\n", m1);
	free(copy);
	free(orig);
	fg_free(&s);
	return 0;
}
