/*
 * t_compress_options - the compression options through the public API:
 *  - without libzstd in the build, compress=ZSTD fails at bgsnap_start with
 *    -ENOTSUP and a message naming libzstd, and leaves no file;
 *  - with it, an unknown method or a level out of range is -EINVAL with a
 *    message, no file; levels 1 and 19 and a thread count write files that
 *    read back as the memory, version 2, compress ZSTD;
 *  - a caller built before the fields existed (size up to log_ctx) gets
 *    an uncompressed version 1 file.
 */
#include <stddef.h>
#include <sys/mman.h>

#include "snaptest.h"

#define MEM (1u << 20)

static int snap(const struct bgsnap_options *o, void *mem, const char *path, char *msg, size_t len)
{
	bgsnap_engine *e = NULL;
	int r = bgsnap_create(&e, o);
	CHECK_RC(r, 0, "bgsnap_create");
	st_add_region(e, "mem", mem, MEM);
	r = bgsnap_start(e, path);
	if (r == 0)
		r = bgsnap_wait(e);
	snprintf(msg, len, "%s", bgsnap_errmsg(e));
	bgsnap_destroy(e);
	return r;
}

static void check_file(const char *path, const void *mem, uint32_t version, int compress)
{
	CHECK_FILE_REGION(path, "mem", mem, MEM);
	char err[256];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	CHECK(fi.version == version && fi.compress == compress, "%s: version %u compress %d, want %u %d", path,
	      fi.version, fi.compress, version, compress);
	bgsnap_reader_close(r);
}

int main(void)
{
	uint8_t *mem = tu_map_anon(MEM);
	tu_fill(mem, MEM, 3, 4);
	char path[600], msg[512];
	snprintf(path, sizeof(path), "%s/c.bgs", tu_tmpdir());
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = BGSNAP_METHOD_STOP;
	CHECK(o.compress == BGSNAP_COMPRESS_NONE && o.compress_level == 0 && o.compress_threads == 0,
	      "defaults: compress %d level %d threads %u", o.compress, o.compress_level, o.compress_threads);
	CHECK(bgsnap_compress_available(BGSNAP_COMPRESS_NONE) == 1, "NONE unavailable");
	CHECK(bgsnap_compress_available(42) == 0, "method 42 available");
	o.compress = BGSNAP_COMPRESS_ZSTD;
	if (!bgsnap_compress_available(BGSNAP_COMPRESS_ZSTD)) {
		CHECK_RC(snap(&o, mem, path, msg, sizeof(msg)), -ENOTSUP, "compress=zstd without libzstd");
		CHECK(strstr(msg, "libzstd"), "message '%s' does not name libzstd", msg);
		CHECK_DIR_COUNT(tu_tmpdir(), 0, "a refused start left a file");
		printf("ok: this build has no zstd; compress=zstd is refused: %s\n", msg);
		return 0;
	}
	o.compress = 7;
	CHECK_RC(snap(&o, mem, path, msg, sizeof(msg)), -EINVAL, "compress=7");
	CHECK(msg[0], "no message for compress=7");
	o.compress = BGSNAP_COMPRESS_ZSTD;
	o.compress_level = 99;
	CHECK_RC(snap(&o, mem, path, msg, sizeof(msg)), -EINVAL, "level 99");
	CHECK(strstr(msg, "level"), "message '%s' for level 99", msg);
	CHECK_DIR_COUNT(tu_tmpdir(), 0, "refused starts left a file");
	int levels[] = { 1, 19, 0 };
	for (size_t i = 0; i < 3; i++) {
		o.compress_level = levels[i];
		o.compress_threads = (unsigned)i * 2;
		CHECK_RC(snap(&o, mem, path, msg, sizeof(msg)), 0, "level %d: %s", levels[i], msg);
		check_file(path, mem, 2, BGSNAP_COMPRESS_ZSTD);
	}
	/* An older caller: its struct ends before the compression fields. */
	struct bgsnap_options old;
	memcpy(&old, &o, sizeof(old));
	old.size = (uint32_t)offsetof(struct bgsnap_options, compress);
	CHECK_RC(snap(&old, mem, path, msg, sizeof(msg)), 0, "old-size options: %s", msg);
	check_file(path, mem, 1, BGSNAP_COMPRESS_NONE);
	munmap(mem, MEM);
	printf("ok: compression options checked, levels 1, 19 and the default written and read back\n");
	return 0;
}
