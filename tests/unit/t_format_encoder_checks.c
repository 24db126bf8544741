/*
 * t_format_encoder_checks - the encoder refuses to produce a file the
 * reader would reject: bad region tables (names, alignment, overlap,
 * duplicates), pages outside a region, a page written twice, a page never
 * written (fmtw_finish), bad or duplicate state names; and a sink failure
 * is sticky: every later call returns it.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "format/format.h"
#include "sink/sink.h"
#include "testutil.h"

static int devnull;

/* fmtw_begin on a sink over `fd`. */
static int begin_fd(struct fmt_writer *w, struct sink *s, struct bgsnap_err *e, int fd, const struct fmt_region *r,
                    uint32_t n)
{
	err_clear(e);
	CHECK_RC(sink_open_fd(s, fd, e), 0, "sink_open_fd");
	struct fmt_out out = { s, sink_out_writev, sink_out_flush, SINK_IOV_MAX, NULL };
	return fmtw_begin(w, &out, r, n, e);
}

static int begin(struct fmt_writer *w, struct sink *s, struct bgsnap_err *e, const struct fmt_region *r,
                 uint32_t n)
{
	return begin_fd(w, s, e, devnull, r, n);
}

static void bad_table(const char *what, const struct fmt_region *r, uint32_t n, const char *want)
{
	struct fmt_writer w;
	struct sink s;
	struct bgsnap_err e;
	CHECK_RC(begin(&w, &s, &e, r, n), -EINVAL, "%s accepted", what);
	CHECK(strstr(e.msg, want), "%s: message '%s' lacks '%s'", what, e.msg, want);
	fmtw_free(&w);
	sink_abort(&s);
}

int main(void)
{
	devnull = open("/dev/null", O_WRONLY);
	CHECK(devnull >= 0, "open /dev/null");
	static uint8_t page[4 * 4096];
	memset(page, 1, sizeof(page));

	bad_table("no region", NULL, 0, "regions");
	bad_table("empty name", (struct fmt_region[]){ { "", 0, 4096 } }, 1, "name");
	bad_table("64-byte name",
	          (struct fmt_region[]){ { "0123456789012345678901234567890123456789012345678901234567890123", 0, 4096 } },
	          1, "name");
	bad_table("newline in name", (struct fmt_region[]){ { "a\nb", 0, 4096 } }, 1, "name");
	bad_table("unaligned addr", (struct fmt_region[]){ { "a", 100, 4096 } }, 1, "aligned");
	bad_table("unaligned size", (struct fmt_region[]){ { "a", 0, 4097 } }, 1, "aligned");
	bad_table("empty region", (struct fmt_region[]){ { "a", 0, 0 } }, 1, "empty");
	bad_table("beyond 2^64", (struct fmt_region[]){ { "a", UINT64_MAX - 4095, 8192 } }, 1, "beyond 2^64");
	bad_table("duplicate name", (struct fmt_region[]){ { "a", 0, 4096 }, { "a", 8192, 4096 } }, 2, "duplicate");
	bad_table("overlap", (struct fmt_region[]){ { "a", 0, 8192 }, { "b", 4096, 4096 } }, 2, "overlap");

	struct fmt_region regs[] = { { "a", 0, 4 * 4096 }, { "b", 1 << 20, 4096 } };
	struct fmt_writer w;
	struct sink s;
	struct bgsnap_err e;
	CHECK_RC(begin(&w, &s, &e, regs, 2), 0, "begin: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 2, 0, 1, page), -EINVAL, "region 2 of 2 accepted");
	fmtw_free(&w);
	sink_abort(&s);

	CHECK_RC(begin(&w, &s, &e, regs, 2), 0, "begin");
	CHECK_RC(fmtw_pages(&w, 0, 3, 2, page), -EINVAL, "pages 3..4 of a 4-page region accepted");
	CHECK(strstr(e.msg, "outside"), "message: %s", e.msg);
	fmtw_free(&w);
	sink_abort(&s);

	CHECK_RC(begin(&w, &s, &e, regs, 2), 0, "begin");
	CHECK_RC(fmtw_pages(&w, 0, 0, 2, page), 0, "pages 0..1: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 0, 1, 2, page), -EINVAL, "page 1 written twice accepted");
	CHECK(strstr(e.msg, "page 1 of region 0 written twice"), "message: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 0, 3, 1, page), -EINVAL, "the failure is not sticky");
	fmtw_free(&w);
	sink_abort(&s);

	CHECK_RC(begin(&w, &s, &e, regs, 2), 0, "begin");
	CHECK_RC(fmtw_pages(&w, 0, 0, 4, page), 0, "region a");
	CHECK_RC(fmtw_state(&w, "cpu", "x", 1), 0, "state");
	CHECK_RC(fmtw_state(&w, "cpu", "y", 1), -EINVAL, "duplicate state name accepted");
	fmtw_free(&w);
	sink_abort(&s);

	CHECK_RC(begin(&w, &s, &e, regs, 2), 0, "begin");
	CHECK_RC(fmtw_state(&w, "bad\tname", "x", 1), -EINVAL, "state name with a tab accepted");
	fmtw_free(&w);
	sink_abort(&s);

	CHECK_RC(begin(&w, &s, &e, regs, 2), 0, "begin");
	CHECK_RC(fmtw_pages(&w, 0, 0, 4, page), 0, "region a");
	struct fmt_meta meta = { 0 };
	CHECK_RC(fmtw_finish(&w, &meta), -EINVAL, "finish with region b unwritten accepted");
	CHECK(strstr(e.msg, "1 of 5 pages never written (first: page 0 of region 1)"), "message: %s", e.msg);
	fmtw_free(&w);
	sink_abort(&s);

	/* A sink that fails: a pipe with no reader (EPIPE; SIGPIPE ignored). */
	signal(SIGPIPE, SIG_IGN);
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	close(p[0]);
	int rc = begin_fd(&w, &s, &e, p[1], regs, 2);
	CHECK(rc < 0, "writing to a closed pipe succeeded");
	CHECK_RC(fmtw_pages(&w, 0, 0, 1, page), rc, "later call does not return the sticky error");
	CHECK_RC(fmtw_finish(&w, &meta), rc, "finish does not return the sticky error");
	fmtw_free(&w);
	sink_abort(&s);
	close(p[1]);
	printf("ok: encoder refusals and sticky sink failure\n");
	return 0;
}
