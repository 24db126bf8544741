/*
 * t_restore_stream - bgsnap_restore_stream, the eager restore of a snapshot
 * as it arrives (records in file order, the index last):
 *  - a stream from a pipe, raw and zstd, into fresh memory between guard
 *    pages and into memory already holding other bytes (zero pages must
 *    then be written): exactly the original, and the state blobs readable
 *    afterwards; a target for one region only restores that one;
 *  - a random-access reader of the same file is rewound and read the same
 *    way, twice;
 *  - refused: a stream already partly read, a target of the wrong size
 *    (nothing written), an incremental file (it needs its parents);
 *  - every cut of the stream (at 61 places) fails with -EBADMSG and a
 *    message with an offset; one byte changed at 211 places either fails
 *    the same way or, when the byte did not matter, restores exactly the
 *    original; no write ever lands outside the targets (guard pages).
 * timeout: 120
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "format/format.h"
#include "testutil.h"

static struct fg_spec g_s;

static void map_targets(struct bgsnap_restore_target *t, int fill)
{
	for (unsigned i = 0; i < g_s.nregions; i++) {
		size_t len = g_s.pages[i] * TU_PAGE;
		t[i] = (struct bgsnap_restore_target){ i, tu_map_guarded(len), len };
		if (fill >= 0)
			memset(t[i].dst, fill, len);
	}
}

static void unmap_targets(struct bgsnap_restore_target *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		munmap((uint8_t *)t[i].dst - TU_PAGE, t[i].len + 2 * TU_PAGE);
}

static int same(const struct bgsnap_restore_target *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (memcmp(t[i].dst, g_s.mem[t[i].region], t[i].len))
			return 0;
	return 1;
}

static bgsnap_reader *open_stream_fd(int fd, const char *what)
{
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open_stream(&r, fd, err, sizeof(err)), 0, "%s: open_stream: %s", what, err);
	return r;
}

/* The stream from a pipe into targets filled with `fill` (-1: fresh). */
static void from_pipe(int fill, const char *what)
{
	pid_t w;
	int fd = fg_stream_start(&g_s, &w);
	bgsnap_reader *r = open_stream_fd(fd, what);
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	map_targets(t, fill);
	char err[600];
	CHECK_RC(bgsnap_restore_stream(r, t, g_s.nregions, err, sizeof(err)), 0, "%s: %s", what, err);
	CHECK(same(t, g_s.nregions), "%s: restored memory differs from the original", what);
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.state_count == g_s.nstates, "%s: %u state blobs after the restore, %u written", what, fi.state_count,
	      g_s.nstates);
	for (unsigned i = 0; i < g_s.nstates; i++) {
		const void *d;
		size_t len;
		CHECK_RC(bgsnap_reader_find_state(r, g_s.state_names[i], &d, &len), 0, "%s: state %s", what,
		         g_s.state_names[i]);
		CHECK(len == g_s.state_len[i] && !memcmp(d, g_s.state[i], len), "%s: state %s differs", what,
		      g_s.state_names[i]);
	}
	bgsnap_reader_close(r);
	fg_stream_end(fd, w);
	unmap_targets(t, g_s.nregions);
}

static void one_region(void)
{
	pid_t w;
	int fd = fg_stream_start(&g_s, &w);
	bgsnap_reader *r = open_stream_fd(fd, "one region");
	size_t len = g_s.pages[1] * TU_PAGE;
	struct bgsnap_restore_target t = { 1, tu_map_guarded(len), len };
	char err[600];
	CHECK_RC(bgsnap_restore_stream(r, &t, 1, err, sizeof(err)), 0, "one region: %s", err);
	CHECK(same(&t, 1), "one region: region 1 differs");
	bgsnap_reader_close(r);
	fg_stream_end(fd, w);
	unmap_targets(&t, 1);
}

static void random_access(const char *path)
{
	bgsnap_reader *r;
	char err[600];
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open %s: %s", path, err);
	for (int k = 0; k < 2; k++) {
		struct bgsnap_restore_target t[FG_MAX_REGIONS];
		map_targets(t, 0x5a);
		CHECK_RC(bgsnap_restore_stream(r, t, g_s.nregions, err, sizeof(err)), 0, "random-access reader, pass %d: %s",
		         k, err);
		CHECK(same(t, g_s.nregions), "random-access reader, pass %d: content differs", k);
		unmap_targets(t, g_s.nregions);
	}
	bgsnap_reader_close(r);
}

static void refusals(const char *path)
{
	char err[600];
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s", path);
	bgsnap_reader *r = open_stream_fd(fd, "partly read");
	struct bgsnap_record rec;
	CHECK(bgsnap_reader_next(r, &rec) == 1, "the first record");
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	map_targets(t, 0xee);
	CHECK_RC(bgsnap_restore_stream(r, t, g_s.nregions, err, sizeof(err)), -EINVAL, "a stream already partly read");
	CHECK(strstr(err, "already read"), "partly read: the message does not say so: %s", err);
	bgsnap_reader_close(r);

	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	r = open_stream_fd(fd, "wrong size");
	t[1].len -= TU_PAGE;
	CHECK_RC(bgsnap_restore_stream(r, t, g_s.nregions, err, sizeof(err)), -EINVAL, "a target one page short");
	t[1].len += TU_PAGE;
	for (unsigned i = 0; i < g_s.nregions; i++)
		for (size_t b = 0; b < t[i].len; b++)
			CHECK(((uint8_t *)t[i].dst)[b] == 0xee, "wrong size: region %u byte %zu was written", i, b);
	bgsnap_reader_close(r);
	close(fd);
	unmap_targets(t, g_s.nregions);
	CHECK_RC(bgsnap_restore_stream(NULL, t, 1, err, sizeof(err)), -EINVAL, "no reader");
}

/* `len` bytes of `buf` as a stream (a file read as one: the reader cannot
 * tell), restored: 0 and the original, or a clean failure. */
static int damaged(const char *path, const uint8_t *buf, size_t len, const char *what)
{
	fg_write_file(path, buf, len);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "%s: open", what);
	bgsnap_reader *r;
	char err[600];
	int rc = bgsnap_reader_open_stream(&r, fd, err, sizeof(err));
	if (rc == 0) {
		struct bgsnap_restore_target t[FG_MAX_REGIONS];
		map_targets(t, -1);
		rc = bgsnap_restore_stream(r, t, g_s.nregions, err, sizeof(err));
		if (rc == 0)
			CHECK(same(t, g_s.nregions), "%s: restore succeeded with different content", what);
		else
			CHECK(rc == -EBADMSG && strstr(err, "offset"), "%s: %s (%s), not -EBADMSG with an offset", what,
			      tu_errname(rc), err);
		bgsnap_reader_close(r);
		unmap_targets(t, g_s.nregions);
	}
	close(fd);
	unlink(path);
	return rc;
}

static void hostile(const char *path, const char *dir)
{
	size_t len;
	uint8_t *orig = fg_read_file(path, &len);
	uint8_t *buf = malloc(len);
	CHECK(buf, "out of memory");
	char p[4096], what[128];
	snprintf(p, sizeof(p), "%s/damaged", dir);
	for (unsigned k = 1; k <= 61; k++) {
		size_t cut = len * k / 62;
		snprintf(what, sizeof(what), "cut at %zu of %zu", cut, len);
		CHECK(damaged(p, orig, cut, what) < 0, "%s: restore succeeded", what);
	}
	unsigned ok = 0;
	for (unsigned k = 0; k < 211; k++) {
		size_t at = (size_t)(tu_mix64(k) % len);
		memcpy(buf, orig, len);
		buf[at] ^= (uint8_t)(1u << (k % 8));
		snprintf(what, sizeof(what), "bit %u of byte %zu changed", k % 8, at);
		ok += damaged(p, buf, len, what) == 0;
	}
	tu_msg(__FILE__, __LINE__, "%zu-byte file: 61 cuts refused, %u of 211 one-bit changes harmless", len, ok);
	free(buf);
	free(orig);
}

static void incremental_refused(const char *dir)
{
	/* Any v3 file whose parent id is not zero is incremental. */
	struct fmt_lineage lin = { .depth = 1 };
	memset(lin.id, 1, sizeof(lin.id));
	memset(lin.parent_id, 2, sizeof(lin.parent_id));
	struct fg_spec s;
	fg_default(&s);
	s.lin = &lin;
	fg_build(&s);
	char path[4096], err[600];
	snprintf(path, sizeof(path), "%s/incr", dir);
	fg_write_path(&s, path);
	int fd = open(path, O_RDONLY);
	bgsnap_reader *r = open_stream_fd(fd, "incremental");
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	for (unsigned i = 0; i < s.nregions; i++)
		t[i] = (struct bgsnap_restore_target){ i, tu_map_guarded(s.pages[i] * TU_PAGE), s.pages[i] * TU_PAGE };
	CHECK_RC(bgsnap_restore_stream(r, t, s.nregions, err, sizeof(err)), -EINVAL, "an incremental stream");
	CHECK(strstr(err, "incremental"), "incremental: the message does not say so: %s", err);
	bgsnap_reader_close(r);
	close(fd);
	unmap_targets(t, s.nregions);
	fg_free(&s);
}

int main(void)
{
	const char *dir = tu_tmpdir();
	char path[4096];
	for (int c = FMT_COMPRESS_NONE; c <= FMT_COMPRESS_ZSTD; c++) {
		if (c == FMT_COMPRESS_ZSTD && !bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD))
			break;
		fg_default(&g_s);
		g_s.compress = c;
		g_s.text_regions = 0x2;
		fg_build(&g_s);
		const char *z = c ? "zstd" : "raw";
		char what[64];
		snprintf(what, sizeof(what), "%s, fresh targets", z);
		from_pipe(-1, what);
		snprintf(what, sizeof(what), "%s, targets holding 0xa5", z);
		from_pipe(0xa5, what);
		one_region();
		snprintf(path, sizeof(path), "%s/%s.snap", dir, z);
		fg_write_path(&g_s, path);
		random_access(path);
		refusals(path);
		hostile(path, dir);
		fg_free(&g_s);
	}
	incremental_refused(dir);
	printf("ok\n");
	return 0;
}
