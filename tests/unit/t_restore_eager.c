/*
 * t_restore_eager - bgsnap_restore puts back exactly the snapshot's bytes:
 * into fresh anonymous memory (the userfaultfd path), into populated memory
 * full of garbage and into a shared memfd mapping (written in place), with
 * 1 and 4 threads; every destination sits between PROT_NONE guard pages.
 * Bad targets (size mismatch, overlap, unaligned, unknown region, a region
 * twice) fail with -EINVAL before a byte is written.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bgsnap.h"
#include "fmtgen.h"
#include "testutil.h"

/* len bytes between two PROT_NONE pages; fresh (never touched) unless fill. */
static uint8_t *guarded(size_t len, int garbage)
{
	uint8_t *p = mmap(NULL, len + 2 * TU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(mprotect(p, TU_PAGE, PROT_NONE) == 0 && mprotect(p + TU_PAGE + len, TU_PAGE, PROT_NONE) == 0,
	      "mprotect");
	if (garbage)
		memset(p + TU_PAGE, 0xA5, len);
	return p + TU_PAGE;
}

static void unguard(uint8_t *p, size_t len)
{
	munmap(p - TU_PAGE, len + 2 * TU_PAGE);
}

static void check_restore(const char *path, const struct fg_spec *s, int mode, unsigned threads)
{
	static const char *names[] = { "fresh", "garbage", "memfd" };
	struct bgsnap_restore_target t[FG_MAX_REGIONS];
	int mfd = -1;
	for (unsigned i = 0; i < s->nregions; i++) {
		size_t len = s->pages[i] * TU_PAGE;
		t[i].region = i;
		t[i].len = len;
		if (mode == 2) {
			mfd = memfd_create("restore", MFD_CLOEXEC);
			CHECK(mfd >= 0 && ftruncate(mfd, (off_t)len) == 0, "memfd: %s", strerror(errno));
			t[i].dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
			CHECK(t[i].dst != MAP_FAILED, "mmap memfd: %s", strerror(errno));
			memset(t[i].dst, 0x5A, len);
			close(mfd);
		} else {
			t[i].dst = guarded(len, mode == 1);
		}
	}
	char err[600];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	int rc = bgsnap_restore_reader(r, t, s->nregions, threads, err, sizeof(err));
	bgsnap_reader_close(r);
	CHECK_RC(rc, 0, "restore into %s memory, %u threads: %s", names[mode], threads, err);
	for (unsigned i = 0; i < s->nregions; i++) {
		size_t len = s->pages[i] * TU_PAGE;
		CHECK(!memcmp(t[i].dst, s->mem[i], len), "%s/%u threads: region %u differs from the snapshot",
		      names[mode], threads, i);
		if (mode == 2)
			munmap(t[i].dst, len);
		else
			unguard(t[i].dst, len);
	}
	printf("ok: %s memory, %u threads\n", names[mode], threads);
}

int main(void)
{
	struct fg_spec s;
	fg_default(&s);
	s.pages[2] = 3000;   /* several 4 MiB chunks: threads share a region */
	fg_build(&s);
	char path[512];
	snprintf(path, sizeof(path), "%s/e.bgs", tu_tmpdir());
	fg_write_path(&s, path);

	for (int mode = 0; mode < 3; mode++) {
		check_restore(path, &s, mode, 1);
		check_restore(path, &s, mode, 4);
	}

	/* Bad targets: nothing written (the garbage stays), -EINVAL. */
	size_t l0 = s.pages[0] * TU_PAGE, l1 = s.pages[1] * TU_PAGE;
	uint8_t *a = guarded(l0, 1), *b = guarded(l1, 1);
	char err[600];
	bgsnap_reader *r;
	CHECK_RC(bgsnap_reader_open(&r, path, err, sizeof(err)), 0, "open: %s", err);
	struct bgsnap_restore_target t[2] = { { 0, a, l0 }, { 1, b, l1 } };
	struct bgsnap_restore_target bad;
	bad = (struct bgsnap_restore_target){ 0, a, l0 - TU_PAGE };
	CHECK_RC(bgsnap_restore_reader(r, &bad, 1, 1, err, sizeof(err)), -EINVAL, "short target");
	printf("short target: %s\n", err);
	bad = (struct bgsnap_restore_target){ 0, a, l0 + TU_PAGE };
	CHECK_RC(bgsnap_restore_reader(r, &bad, 1, 1, err, sizeof(err)), -EINVAL, "long target");
	bad = (struct bgsnap_restore_target){ 0, a + 1, l0 };
	CHECK_RC(bgsnap_restore_reader(r, &bad, 1, 1, err, sizeof(err)), -EINVAL, "unaligned target");
	bad = (struct bgsnap_restore_target){ 7, a, l0 };
	CHECK_RC(bgsnap_restore_reader(r, &bad, 1, 1, err, sizeof(err)), -EINVAL, "unknown region");
	printf("unknown region: %s\n", err);
	t[1] = (struct bgsnap_restore_target){ 0, a, l0 };
	CHECK_RC(bgsnap_restore_reader(r, t, 2, 1, err, sizeof(err)), -EINVAL, "overlapping targets");
	printf("overlap: %s\n", err);
	/* A valid first target followed by a bad second: the first is untouched. */
	t[1] = (struct bgsnap_restore_target){ 1, b, l1 - TU_PAGE };
	CHECK_RC(bgsnap_restore_reader(r, t, 2, 2, err, sizeof(err)), -EINVAL, "second target bad");
	for (size_t i = 0; i < l0; i++)
		CHECK(a[i] == 0xA5, "byte %zu of a target was written although the targets were refused", i);
	t[1] = (struct bgsnap_restore_target){ 0, b, l0 };
	CHECK_RC(bgsnap_restore_reader(r, t, 2, 1, err, sizeof(err)), -EINVAL, "one region twice");
	printf("region twice: %s\n", err);
	t[0] = (struct bgsnap_restore_target){ 0, a, l0 };
	CHECK_RC(bgsnap_restore("/nonexistent/x.bgs", t, 1, 1, err, sizeof(err)), -ENOENT, "missing file");
	printf("missing file: %s\n", err);
	CHECK_RC(bgsnap_restore(path, t, 1, 1, err, sizeof(err)), 0, "restore by path: %s", err);
	CHECK(!memcmp(a, s.mem[0], l0), "restore by path: region 0 differs");
	bgsnap_reader_close(r);
	unguard(a, l0);
	unguard(b, l1);
	fg_free(&s);
	printf("ok\n");
	return 0;
}
