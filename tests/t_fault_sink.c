/*
 * t_fault_sink.c - fault injection in the sink, for every method.  This
 * program defines writev(), write() and fsync() itself: the library's calls
 * bind to these (a static link prefers the program's definition over
 * libc's), which pass through to the kernel except for the snapshot's file
 * descriptor, where they inject, at a seeded random byte offset:
 *   ENOSPC, EIO, EPIPE     -> the snapshot fails with that errno and a
 *                             message, no file is left, memory writable;
 *   a short write, EINTR   -> transparently retried: the snapshot commits
 *                             and reads back exactly;
 *   fsync EIO              -> fails with -EIO, no file left.
 * The injection state lives in a MAP_SHARED page so that a fork method's
 * child (which does the writing there) shares it with the test.
 * Set BGSNAP_FAULT_SEED to replay a run.
 * timeout: 600
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "snaptest.h"

#define MEM (4u << 20)

enum fault { F_ENOSPC, F_EIO, F_EPIPE, F_SHORT, F_EINTR, F_FSYNC_EIO, F_COUNT };
static const char *const fault_name[] = { "ENOSPC", "EIO", "EPIPE", "short-write", "EINTR", "fsync-EIO" };

struct inject {
	_Atomic int armed;
	int fault;
	uint64_t at;              /* byte offset of the fault in the stream  */
	_Atomic uint64_t written; /* bytes passed through so far             */
	_Atomic int fired;
	_Atomic uint64_t calls;   /* write calls seen on the target          */
	char dir[512];            /* the target: a file in this directory    */
};
static struct inject *inj;

static int is_target(int fd)
{
	if (!inj || !atomic_load(&inj->armed) || fd <= 2)
		return 0;
	char lp[64], target[600];
	snprintf(lp, sizeof(lp), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(lp, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	size_t dl = strlen(inj->dir);
	return strncmp(target, inj->dir, dl) == 0 && target[dl] == '/';
}

static ssize_t real_writev(int fd, const struct iovec *iov, int cnt)
{
	return syscall(SYS_writev, fd, iov, cnt);
}

/* Writes at most `limit` bytes of iov. */
static ssize_t writev_limited(int fd, const struct iovec *iov, int cnt, size_t limit)
{
	struct iovec v[64];
	int n = 0;
	for (int i = 0; i < cnt && n < 64 && limit; i++) {
		v[n] = iov[i];
		if (v[n].iov_len > limit)
			v[n].iov_len = limit;
		limit -= v[n].iov_len;
		n++;
	}
	return n ? real_writev(fd, v, n) : 0;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt);
ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (!is_target(fd))
		return real_writev(fd, iov, cnt);
	atomic_fetch_add(&inj->calls, 1);
	size_t total = 0;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	uint64_t pos = atomic_load(&inj->written);
	int f = inj->fault;
	if (!atomic_load(&inj->fired) && f != F_FSYNC_EIO && pos + total > inj->at) {
		atomic_store(&inj->fired, 1);
		size_t before = (size_t)(inj->at - pos);
		if (f == F_SHORT) {
			/* Stop short, at least one byte in (a 0 return means EOF). */
			ssize_t w = writev_limited(fd, iov, cnt, before ? before : 1);
			if (w > 0)
				atomic_fetch_add(&inj->written, (uint64_t)w);
			return w;
		}
		if (f == F_EINTR) {
			errno = EINTR;
			return -1;
		}
		/* The bytes before the fault point reach the file first, as a
		 * real full disk would do: a short write, then the error. */
		if (before) {
			ssize_t w = writev_limited(fd, iov, cnt, before);
			if (w > 0)
				atomic_fetch_add(&inj->written, (uint64_t)w);
			return w;
		}
		errno = f == F_ENOSPC ? ENOSPC : f == F_EIO ? EIO : EPIPE;
		return -1;
	}
	if (atomic_load(&inj->fired) && (f == F_ENOSPC || f == F_EIO || f == F_EPIPE)) {
		/* The error is sticky, as on a full disk. */
		errno = f == F_ENOSPC ? ENOSPC : f == F_EIO ? EIO : EPIPE;
		return -1;
	}
	ssize_t w = real_writev(fd, iov, cnt);
	if (w > 0)
		atomic_fetch_add(&inj->written, (uint64_t)w);
	return w;
}

ssize_t write(int fd, const void *buf, size_t len);
ssize_t write(int fd, const void *buf, size_t len)
{
	if (!is_target(fd))
		return syscall(SYS_write, fd, buf, len);
	struct iovec v = { (void *)buf, len };
	return writev(fd, &v, 1);
}

int fsync(int fd);
int fsync(int fd)
{
	if (is_target(fd) && inj->fault == F_FSYNC_EIO) {
		struct stat sb;
		/* Only the file, not the directory fsync. */
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
			atomic_store(&inj->fired, 1);
			errno = EIO;
			return -1;
		}
	}
	return (int)syscall(SYS_fsync, fd);
}

static uint64_t seed;
static uint64_t file_size_hint;

static uint64_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

struct fault_case {
	int method;
	int fault;
	uint64_t at;
};

static int run(void *arg)
{
	struct fault_case *c = arg;
	struct st_busy b;
	st_busy_start(&b, c->method, MEM, 61, 7, 32 * TU_PAGE, true);
	const char *dir = b.dir, *path = b.path;
	bgsnap_engine *e = b.e;
	uint8_t *m = b.mem, *copy = b.copy;

	memset(inj, 0, sizeof(*inj));
	snprintf(inj->dir, sizeof(inj->dir), "%s", dir);
	inj->fault = c->fault;
	inj->at = c->at;
	atomic_store(&inj->armed, 1);
	tu_phase("snapshot with an injected sink fault");
	int r = bgsnap_start(e, path);
	if (r == 0)
		r = bgsnap_wait(e);
	atomic_store(&inj->armed, 0);
	printf("    %s at byte %llu: %s%s%s\n", fault_name[c->fault], (unsigned long long)c->at, tu_errname(r),
	       r ? ": " : "", r ? bgsnap_errmsg(e) : "");
	if (atomic_load(&inj->calls) == 0 && c->fault != F_FSYNC_EIO)
		SKIP("the sink never called write/writev on the file: injection by symbol interposition does not reach it");
	if (!atomic_load(&inj->fired))
		SKIP("the fault point %llu lies beyond the end of the file (%llu bytes written)",
		     (unsigned long long)c->at, (unsigned long long)atomic_load(&inj->written));

	switch (c->fault) {
	case F_SHORT:
	case F_EINTR:
		CHECK_RC(r, 0, "a %s must be retried by the sink: %s", fault_name[c->fault], bgsnap_errmsg(e));
		CHECK_FILE_REGION(path, "mem", copy, MEM);
		CHECK_DIR_COUNT(dir, 1, "one snapshot, one file");
		break;
	default: {
		int want = c->fault == F_ENOSPC ? -ENOSPC : c->fault == F_EPIPE ? -EPIPE : -EIO;
		CHECK_RC(r, want, "an injected %s: %s", fault_name[c->fault], bgsnap_errmsg(e));
		CHECK_ERRMSG(e);
		CHECK(strstr(bgsnap_errmsg(e), strerror(-want)) != NULL, "the message does not say '%s'",
		      strerror(-want));
		CHECK_FAILED_STATS(e, want);
		CHECK_DIR_COUNT(dir, 0, "a failed snapshot left files");
		break;
	}
	}
	CHECK_WRITERS_PROGRESS(&b.w);
	CHECK_WRITABLE("region after an injected fault", m, MEM);
	CHECK(tu_no_children(), "a child process was left");
	st_busy_stop(&b);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* a real EPIPE is not what this test is about */
	inj = mmap(NULL, sizeof(*inj), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(inj != MAP_FAILED, "mmap: %s", strerror(errno));
	seed = tu_seed();
	if (!seed)
		seed = 1;
	/* A snapshot of MEM with one page in 7 zero is ~MEM*6/7 bytes. */
	file_size_hint = (uint64_t)MEM * 6 / 7;

	struct tu_tally t = { 0 };
	for (int f = 0; f < F_COUNT; f++) {
		for (int m = BGSNAP_METHOD_AUTO + 1; m < BGSNAP_METHOD_COUNT_; m++) {
			if (!st_method_selected(m))
				continue;
			char why[256];
			if (bgsnap_method_probe(m, why, sizeof(why)) < 0) {
				tu_tally_skip(&t, why);
				continue;
			}
			/* Fault points: in the header, in the page data, near the end. */
			uint64_t pts[3] = { rnd() % 64, 64 + rnd() % (file_size_hint - 64), file_size_hint - rnd() % 4096 };
			int npts = f == F_FSYNC_EIO ? 1 : 3;
			for (int i = 0; i < npts; i++) {
				struct fault_case c = { .method = m, .fault = f, .at = pts[i] };
				char name[128];
				snprintf(name, sizeof(name), "%s@%llu/%s", fault_name[f], (unsigned long long)pts[i],
				         bgsnap_method_name(m));
				tu_tally_add(&t, tu_run_case(name, run, &c, 20));
			}
		}
	}
	tu_tally_exit(&t, "t_fault_sink");
}
