/*
 * t_format_roundtrip - the encoder's output read back through every reader
 * path: random access (info, regions, states, read_region, read_page,
 * verify, next after rewind) and a stream through a pipe from a forked
 * writer.  Content must match the memory the encoder was given, page by page.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "testutil.h"

static void check_states(bgsnap_reader *r, const struct fg_spec *s)
{
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "info");
	CHECK(fi.state_count == s->nstates, "state_count %u, want %u", fi.state_count, s->nstates);
	for (unsigned i = 0; i < s->nstates; i++) {
		const void *d;
		size_t len;
		CHECK_RC(bgsnap_reader_find_state(r, s->state_names[i], &d, &len), 0, "find_state %s",
		         s->state_names[i]);
		CHECK(len == s->state_len[i] && !memcmp(d, s->state[i], len), "state %s differs", s->state_names[i]);
	}
	CHECK_RC(bgsnap_reader_find_state(r, "nope", NULL, NULL), -ENOENT, "absent state");
}

/* Walks next() to END, comparing every record with memory; returns pages seen. */
static uint64_t walk(bgsnap_reader *r, const struct fg_spec *s, uint64_t *zero)
{
	struct bgsnap_record rec;
	uint64_t pages = 0;
	int rc;
	*zero = 0;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0) {
		if (rec.kind == BGSNAP_REC_END)
			break;
		if (rec.kind == BGSNAP_REC_STATE)
			continue;
		CHECK(rec.region < s->nregions, "region %u", rec.region);
		const uint8_t *m = s->mem[rec.region] + rec.first_page * TU_PAGE;
		if (rec.kind == BGSNAP_REC_PAGES) {
			CHECK(!memcmp(rec.data, m, rec.count * TU_PAGE), "PAGES at %llu differ",
			      (unsigned long long)rec.offset);
		} else {
			for (size_t i = 0; i < rec.count * TU_PAGE; i++)
				CHECK(!m[i], "ZERO record at %llu covers a non-zero byte", (unsigned long long)rec.offset);
			*zero += rec.count;
		}
		pages += rec.count;
	}
	CHECK(rc > 0, "next failed: %s", bgsnap_reader_errmsg(r));
	CHECK_RC(bgsnap_reader_next(r, &rec), 0, "next after END");
	return pages;
}

int main(void)
{
	struct fg_spec s;
	fg_default(&s);
	fg_build(&s);
	uint64_t total = 0, zero_expected = 0;
	for (unsigned i = 0; i < s.nregions; i++) {
		total += s.pages[i];
		for (uint64_t p = 0; p < s.pages[i]; p++)
			zero_expected += (p % s.zero_every == s.zero_every - 1);
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/a.bgs", tu_tmpdir());
	fg_write_path(&s, path);

	/* Random access. */
	char err[512];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_file_info fi;
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "info");
	CHECK(fi.version == 1 && fi.page_size == 4096 && fi.region_count == s.nregions, "info fields");
	CHECK(fi.pages_total == total && fi.pages_zero == zero_expected, "pages %llu/%llu zero %llu/%llu",
	      (unsigned long long)fi.pages_total, (unsigned long long)total, (unsigned long long)fi.pages_zero,
	      (unsigned long long)zero_expected);
	CHECK(fi.method == BGSNAP_METHOD_STOP && fi.pause_us == 1234 && fi.created_unix_ns == 1700000000123456789ull,
	      "meta");
	check_states(r, &s);
	for (unsigned i = 0; i < s.nregions; i++) {
		struct bgsnap_region_info ri;
		CHECK_RC(bgsnap_reader_region(r, i, &ri, sizeof ri), 0, "region %u", i);
		CHECK(!strcmp(ri.name, s.names[i]) && ri.size == s.pages[i] * TU_PAGE, "region %u", i);
		CHECK_RC(bgsnap_reader_find_region(r, s.names[i]), (int)i, "find_region");
		uint8_t *dst = malloc(ri.size);
		memset(dst, 0xAA, ri.size);
		CHECK_RC(bgsnap_reader_read_region(r, i, dst, ri.size, 0), 0, "read_region: %s", bgsnap_reader_errmsg(r));
		CHECK(!memcmp(dst, s.mem[i], ri.size), "region %u content differs", i);
		memset(dst, 0, ri.size);
		CHECK_RC(bgsnap_reader_read_region(r, i, dst, ri.size, BGSNAP_READ_DST_ZEROED), 0, "read_region zeroed");
		CHECK(!memcmp(dst, s.mem[i], ri.size), "region %u content differs (DST_ZEROED)", i);
		CHECK_RC(bgsnap_reader_read_region(r, i, dst, ri.size - TU_PAGE, 0), -EINVAL, "short dst");
		for (uint64_t p = 0; p < s.pages[i]; p += 1 + p / 3) {
			uint8_t pg[TU_PAGE];
			CHECK_RC(bgsnap_reader_read_page(r, i, p, pg), 0, "read_page: %s", bgsnap_reader_errmsg(r));
			CHECK(!memcmp(pg, s.mem[i] + p * TU_PAGE, TU_PAGE), "page %llu of region %u", (unsigned long long)p, i);
		}
		uint8_t pg[TU_PAGE];
		CHECK_RC(bgsnap_reader_read_page(r, i, s.pages[i], pg), -ENOENT, "page past the end");
		free(dst);
	}
	struct bgsnap_region_info none;
	CHECK_RC(bgsnap_reader_region(r, s.nregions, &none, sizeof none), -ENOENT, "region out of range");
	CHECK_RC(bgsnap_reader_find_region(r, "nope"), -ENOENT, "absent region");
	CHECK_RC(bgsnap_reader_verify(r), 0, "verify: %s", bgsnap_reader_errmsg(r));
	CHECK_RC(bgsnap_reader_verify(r), 0, "second verify: %s", bgsnap_reader_errmsg(r));
	CHECK_RC(bgsnap_reader_rewind(r), 0, "rewind");
	uint64_t z;
	CHECK(walk(r, &s, &z) == total && z == zero_expected, "sequential walk of the file");
	bgsnap_reader_close(r);

	/* Stream through a pipe from a forked writer. */
	pid_t pid;
	int sfd = fg_stream_start(&s, &pid);
	CHECK_RC(bgsnap_reader_open_stream(&r, sfd, err, sizeof(err)), 0, "open_stream: %s", err);
	CHECK_RC(bgsnap_reader_read_page(r, 0, 0, (uint8_t[TU_PAGE]){ 0 }), -ESPIPE, "read_page on a stream");
	CHECK_RC(bgsnap_reader_find_state(r, s.state_names[0], NULL, NULL), -ENOENT, "state before END");
	CHECK(walk(r, &s, &z) == total && z == zero_expected, "stream walk");
	check_states(r, &s);
	CHECK_RC(bgsnap_reader_info(r, &fi, sizeof fi), 0, "info");
	CHECK(fi.file_bytes > 0 && fi.pages_zero == zero_expected, "stream info after END");
	bgsnap_reader_close(r);
	fg_stream_end(sfd, pid);

	/* A regular file read as a stream. */
	int fd = open(path, O_RDONLY);
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "open_stream(file): %s", err);
	CHECK_RC(bgsnap_reader_verify(r), 0, "stream verify: %s", bgsnap_reader_errmsg(r));
	bgsnap_reader_close(r);
	close(fd);
	fg_free(&s);
	printf("ok: %llu pages (%llu zero) in %u regions, %u states\n", (unsigned long long)total,
	       (unsigned long long)zero_expected, s.nregions, s.nstates);
	return 0;
}
