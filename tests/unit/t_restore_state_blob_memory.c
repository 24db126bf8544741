/*
 * t_restore_state_blob_memory - restore never reads STATE records, so a
 * large state blob costs it no memory: a snapshot of a 16 MiB region with a
 * 256 MiB state blob between its page records restores eagerly, with 2 and
 * with 4 threads, under an RLIMIT_AS that leaves room for the threads
 * (stacks, malloc arenas) and a few MiB of read buffer each, but not for a
 * copy of the blob per thread; and lazily under the same limit.  The bytes
 * restored are the snapshot's.  Also checked without a limit (sanitizer
 * builds, where address space is the sanitizer's): the slices restore cuts
 * the file into hold no STATE record and need at most a slice or one PAGES
 * record of buffer.
 * timeout: 300
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bgsnap.h"
#include "format/format.h"
#include "format/reader.h"
#include "restore/restore_int.h"
#include "sink/sink.h"
#include "testutil.h"

#define REGION (16u << 20)
#define BLOB   (256u << 20)
/* Address space allowed beyond what the process had when the limit was
 * set: 4 threads' stacks (8 MiB) and malloc arenas (64 MiB reserved each),
 * their read buffers, the userfaultfd; not 2 x 256 MiB. */
#define MARGIN (320u << 20)

static uint8_t *mem;

static void write_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	/* Never touched: reads as zeros without costing memory. */
	void *blob = mmap(NULL, BLOB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(blob != MAP_FAILED, "mmap blob: %s", strerror(errno));
	struct sink s;
	struct fmt_writer w;
	struct bgsnap_err e = { 0 };
	memset(&w, 0, sizeof(w));
	struct fmt_region reg = { "ram", 0x40000000, REGION };
	CHECK_RC(sink_open_fd(&s, fd, &e), 0, "sink_open_fd: %s", e.msg);
	CHECK_RC(fmtw_begin(&w, &(struct fmt_out){ &s, sink_out_writev, sink_out_flush, SINK_IOV_MAX, NULL }, &reg, 1, &e),
	         0, "fmtw_begin: %s", e.msg);
	uint64_t half = REGION / TU_PAGE / 2;
	CHECK_RC(fmtw_pages(&w, 0, 0, half, mem), 0, "pages: %s", e.msg);
	CHECK_RC(fmtw_state(&w, "big", blob, BLOB), 0, "state: %s", e.msg);
	CHECK_RC(fmtw_state(&w, "small", "x", 1), 0, "state: %s", e.msg);
	CHECK_RC(fmtw_pages(&w, 0, half, half, mem + half * TU_PAGE), 0, "pages: %s", e.msg);
	struct fmt_meta meta = { BGSNAP_METHOD_STOP, 1, 1 };
	CHECK_RC(fmtw_finish(&w, &meta), 0, "finish: %s", e.msg);
	fmtw_free(&w);
	sink_abort(&s);
	close(fd);
	munmap(blob, BLOB);
}

/* What the process maps now (VmSize), bytes. */
static uint64_t vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	CHECK(f, "open /proc/self/status");
	char line[256];
	unsigned long long kb = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
			break;
	fclose(f);
	CHECK(kb > 0, "no VmSize in /proc/self/status");
	return kb * 1024;
}

static void slices_skip_state(bgsnap_reader *r)
{
	struct rst_slice *sl;
	size_t ns;
	uint64_t len;
	struct bgsnap_err e = { 0 };
	CHECK_RC(rst_slices(r, &sl, &ns, &len, &e), 0, "rst_slices: %s", e.msg);
	uint64_t bound = RST_SLICE_BYTES + FMT_REC_HDR_LEN + FMT_RUN_PREFIX_LEN + FMT_REC_CRC_LEN +
	                 (uint64_t)FMT_MAX_READ_RUN_PAGES * TU_PAGE;
	CHECK(len <= bound, "restore needs a %llu-byte buffer per thread for a %u-byte region (bound %llu)",
	      (unsigned long long)len, REGION, (unsigned long long)bound);
	uint64_t pages = 0;
	for (size_t k = 0; k < ns; k++)
		for (size_t i = sl[k].first; i < sl[k].end; i++) {
			struct reader_run x;
			reader_run_get(r, i, &x);
			CHECK(x.kind != FMT_REC_STATE, "slice %zu holds STATE record %zu", k, i);
			pages += x.count;
		}
	CHECK(pages == REGION / TU_PAGE, "the slices cover %llu pages of %u", (unsigned long long)pages,
	      REGION / TU_PAGE);
	free(sl);
}

static void restore_under_limit(bgsnap_reader *r, unsigned threads, int lazy, int limit)
{
	char what[64], err[512] = "";
	snprintf(what, sizeof(what), "%s restore, %u threads", lazy ? "lazy" : "eager", threads);
	uint8_t *dst = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(dst != MAP_FAILED, "mmap: %s", strerror(errno));
	struct rlimit old;
	CHECK(getrlimit(RLIMIT_AS, &old) == 0, "getrlimit: %s", strerror(errno));
	if (limit) {
		struct rlimit lim = { vm_size() + MARGIN, old.rlim_max };
		CHECK(setrlimit(RLIMIT_AS, &lim) == 0, "setrlimit: %s", strerror(errno));
	}
	struct bgsnap_restore_target t = { 0, dst, REGION };
	int rc;
	if (lazy) {
		bgsnap_lazy *l = NULL;
		rc = bgsnap_lazy_restore_start(&l, r, &t, 1, err, sizeof(err));
		if (rc == 0) {
			rc = bgsnap_lazy_wait(l);
			if (rc)
				snprintf(err, sizeof(err), "%s", bgsnap_lazy_errmsg(l));
		}
		bgsnap_lazy_free(l);
	} else {
		rc = bgsnap_restore_reader(r, &t, 1, threads, err, sizeof(err));
	}
	CHECK(setrlimit(RLIMIT_AS, &old) == 0, "setrlimit back: %s", strerror(errno));
	CHECK(rc == 0, "%s%s: %s (%s)", what, limit ? " under RLIMIT_AS" : "", tu_errname(rc), err);
	CHECK(memcmp(dst, mem, REGION) == 0, "%s: the restored memory differs from the snapshot", what);
	munmap(dst, REGION);
}

int main(void)
{
	mem = tu_map_anon(REGION);
	tu_fill(mem, REGION, 14, 5);
	char path[600];
	snprintf(path, sizeof(path), "%s/blob.bgs", tu_tmpdir());
	write_file(path);
	bgsnap_reader *r;
	char msg[512];
	CHECK_RC(bgsnap_reader_open(&r, path, msg, sizeof(msg)), 0, "open: %s", msg);
	slices_skip_state(r);
	/* A sanitizer reserves and maps address space of its own as it goes:
	 * a limit on it says nothing about the library. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	int limit = 0;
	printf("    sanitizer build: restores without RLIMIT_AS\n");
#else
	int limit = 1;
#endif
	restore_under_limit(r, 2, 0, limit);
	restore_under_limit(r, 4, 0, limit);
	restore_under_limit(r, 1, 1, limit);
	bgsnap_reader_close(r);
	unlink(path);
	printf("t_restore_state_blob_memory: a %u MiB region with a %u MiB state blob restored eagerly (2, 4 "
	       "threads) and lazily%s\n", REGION >> 20, BLOB >> 20,
	       limit ? " within RLIMIT_AS = mapped + 320 MiB" : "");
	return 0;
}
