/*
 * testutil.c - libc-only test helpers (see testutil.h).  Invariant: nothing
 * here calls into libbgsnap, so every test program links whatever parts of
 * the library exist.
 */
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void tu_msg(const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "%s:%d: %s\n", file, line, buf);
	fflush(stderr);
}

char tu_last_skip_reason[256];
/* In a forked case: where tu_skip() also sends its reason, for the parent. */
int tu_skip_fd = -1;

void tu_skip(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "skip: %s\n", buf);
	fflush(stderr);
	if (tu_skip_fd >= 0) {
		ssize_t w = write(tu_skip_fd, buf, strlen(buf));
		(void)w;
	}
	_exit(77);
}

void tu_fail_exit(void)
{
	fflush(stdout);
	fflush(stderr);
	/* exit() (not _exit) so the tmpdir is removed; threads stuck in a
	 * fault die with the process. */
	exit(1);
}

static const struct { int code; const char *name; } errnames[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EINTR, "EINTR" }, { EIO, "EIO" },
	{ EBADF, "EBADF" }, { EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
	{ EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { EINVAL, "EINVAL" },
	{ EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" }, { ESPIPE, "ESPIPE" }, { EPIPE, "EPIPE" },
	{ ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" }, { ENOTSUP, "ENOTSUP" },
	{ ECANCELED, "ECANCELED" }, { EBADMSG, "EBADMSG" }, { ETIMEDOUT, "ETIMEDOUT" },
	{ ENXIO, "ENXIO" }, { ECHILD, "ECHILD" }, { EDQUOT, "EDQUOT" }, { EOVERFLOW, "EOVERFLOW" },
	{ ECONNRESET, "ECONNRESET" }, { ENAMETOOLONG, "ENAMETOOLONG" },
};

const char *tu_errname(int code)
{
	static __thread char buf[32];
	if (code == 0)
		return "0";
	if (code > 0) {
		snprintf(buf, sizeof(buf), "+%d", code);
		return buf;
	}
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].code == -code) {
			snprintf(buf, sizeof(buf), "-%s", errnames[i].name);
			return buf;
		}
	snprintf(buf, sizeof(buf), "-E%d", -code);
	return buf;
}

uint64_t tu_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tu_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- temporary directory ---- */

static char tmpdir_path[512];
static pid_t tmpdir_owner;

void tu_dir_clear(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[1024];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (unlink(p) != 0 && errno == EISDIR)
			rmdir(p);
	}
	closedir(d);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(p);
	else
		unlink(p);
	return 0;
}

static void tmpdir_cleanup(void)
{
	/* A forked test case inherits the atexit handler: only the creator
	 * removes the directory (with whatever a killed case left in it). */
	if (!tmpdir_path[0] || getpid() != tmpdir_owner)
		return;
	nftw(tmpdir_path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

const char *tu_tmpdir(void)
{
	if (tmpdir_path[0] && getpid() == tmpdir_owner)
		return tmpdir_path;
	if (tmpdir_path[0]) {
		/* A forked case gets its own directory inside its parent's, so a
		 * case killed by a timeout leaves nothing behind for good. */
		char sub[sizeof(tmpdir_path)];
		int n = snprintf(sub, sizeof(sub), "%s/case-XXXXXX", tmpdir_path);
		if (n < 0 || (size_t)n >= sizeof(sub))
			FAIL("tmpdir path too long");
		memcpy(tmpdir_path, sub, sizeof(sub));
	} else {
		const char *base = getenv("TMPDIR");
		if (!base || !*base)
			base = "/tmp";
		snprintf(tmpdir_path, sizeof(tmpdir_path), "%s/bgsnap-test-XXXXXX", base);
	}
	if (!mkdtemp(tmpdir_path))
		FAIL("mkdtemp(%s): %s", tmpdir_path, strerror(errno));
	tmpdir_owner = getpid();
	atexit(tmpdir_cleanup);
	return tmpdir_path;
}

void tu_check_file(const char *path, const uint8_t *want, size_t len, const char *what)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "%s: %s cannot be opened: %s", what, path, strerror(errno));
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && (size_t)st.st_size == len, "%s: %s is %lld bytes, expected %zu", what, path,
	      (long long)st.st_size, len);
	CHECK((st.st_mode & 07777) == 0600, "%s: mode %04o, expected 0600", what, (unsigned)(st.st_mode & 07777));
	uint8_t *got = malloc(len ? len : 1);
	CHECK(got != NULL, "malloc");
	size_t have = 0;
	while (have < len) {
		ssize_t r = read(fd, got + have, len - have);
		CHECK(r > 0, "%s: read at %zu: %s", what, have, r < 0 ? strerror(errno) : "early end of file");
		have += (size_t)r;
	}
	close(fd);
	for (size_t i = 0; i < len; i++)
		if (got[i] != want[i])
			FAIL("%s: byte %zu (MiB %zu + %zu) is 0x%02x, wrote 0x%02x", what, i, i >> 20, i & ((1u << 20) - 1),
			     got[i], want[i]);
	free(got);
}

bool tu_unnamed_files(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	char lp[40];
	snprintf(lp, sizeof(lp), "/proc/self/fd/%d", fd);
	struct stat a, b;
	bool ok = fstat(fd, &a) == 0 && stat(lp, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
	close(fd);
	return ok;
}

int tu_dir_entries(const char *dir, char *names, size_t names_len)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int n = 0;
	size_t used = 0;
	if (names && names_len)
		names[0] = '\0';
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (names && used + 1 < names_len) {
			int w = snprintf(names + used, names_len - used, "%s%s", used ? " " : "", de->d_name);
			if (w > 0)
				used += (size_t)w;
			if (used >= names_len)
				used = names_len - 1;
		}
	}
	closedir(d);
	return n;
}

/* ---- memory ---- */

void *tu_map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		FAIL("mmap(%zu bytes): %s", len, strerror(errno));
	return p;
}

void *tu_map_guarded(size_t len)
{
	uint8_t *p = mmap(NULL, len + 2 * TU_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		FAIL("mmap(%zu bytes): %s", len + 2 * TU_PAGE, strerror(errno));
	if (mprotect(p, TU_PAGE, PROT_NONE) != 0 || mprotect(p + TU_PAGE + len, TU_PAGE, PROT_NONE) != 0)
		FAIL("mprotect of a guard page: %s", strerror(errno));
	return p + TU_PAGE;
}

void tu_stream_pair(int sv[2], bool socket)
{
	int r = socket ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) : pipe2(sv, O_CLOEXEC);
	if (r != 0)
		FAIL("%s: %s", socket ? "socketpair" : "pipe2", strerror(errno));
}

int tu_hide_proc(const char *why, const char *dir)
{
	if (unshare(CLONE_NEWNS) != 0) {
		printf("    skip %s: unshare(CLONE_NEWNS): %s\n", why, strerror(errno));
		return 77;
	}
	/* An empty tmpfs over /proc: works whether /proc was mounted or not,
	 * and where it may not be unmounted. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("none", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k") != 0) {
		printf("    skip %s: cannot hide /proc here: %s\n", why, strerror(errno));
		return 77;
	}
	CHECK(!tu_unnamed_files(dir), "/proc is hidden but the probe still finds unnamed files in %s", dir);
	return 0;
}

uint64_t tu_seed(void)
{
	const char *s = getenv("BGSNAP_FAULT_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0) : tu_now_ns();
	printf("BGSNAP_FAULT_SEED=%llu\n", (unsigned long long)seed);
	return seed;
}

static sigjmp_buf read_jb;
static volatile sig_atomic_t read_sig;

static void on_read_fault(int sig)
{
	read_sig = sig;
	siglongjmp(read_jb, 1);
}

int tu_read_signal(const volatile void *p)
{
	struct sigaction sa, old_bus, old_segv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_read_fault;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	read_sig = 0;
	if (!sigsetjmp(read_jb, 1))
		(void)*(const volatile uint8_t *)p;
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return read_sig;
}

uint64_t tu_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

void tu_fill(void *base, size_t len, uint64_t seed, unsigned zero_every)
{
	uint8_t *p = base;
	for (size_t pg = 0; pg < len / TU_PAGE; pg++) {
		uint8_t *page = p + pg * TU_PAGE;
		if (zero_every && pg % zero_every == zero_every - 1) {
			memset(page, 0, TU_PAGE);
			continue;
		}
		uint64_t x = tu_mix64(seed * 0x9e3779b97f4a7c15ULL + pg + 1);
		for (size_t i = 0; i < TU_PAGE; i += 8) {
			x = tu_mix64(x + i);
			memcpy(page + i, &x, 8);
		}
	}
}

/* ---- process state ---- */

static int count_dir(const char *path)
{
	int n = tu_dir_entries(path, NULL, 0);
	if (n < 0)
		FAIL("reading %s: %s", path, strerror(-n));
	return n;
}

int tu_count_threads(void)
{
	return count_dir("/proc/self/task");
}

int tu_count_fds(void)
{
	/* opendir's own descriptor is counted: subtract it. */
	return count_dir("/proc/self/fd") - 1;
}

bool tu_no_children(void)
{
	int st;
	pid_t p = waitpid(-1, &st, WNOHANG);
	return p == -1 && errno == ECHILD;
}

/* ---- writability ---- */

/* 1 if every byte of [lo, hi) is covered by writable mappings, 0 if not
 * (then *bad is the first address that is not). */
static int maps_writable(uintptr_t lo, uintptr_t hi, uintptr_t *bad, char *perm_out)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		FAIL("fopen(/proc/self/maps): %s", strerror(errno));
	char line[512];
	uintptr_t cur = lo;
	int ok = 0;
	strcpy(perm_out, "unmapped");
	while (fgets(line, sizeof(line), f)) {
		uintptr_t a, b;
		char perm[8];
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &a, &b, perm) != 3)
			continue;
		if (b <= cur || a > cur)
			continue;
		if (perm[1] != 'w') {
			strcpy(perm_out, perm);
			break;
		}
		cur = b;
		if (cur >= hi) {
			ok = 1;
			break;
		}
	}
	fclose(f);
	*bad = cur;
	return ok;
}

struct wr_arg {
	uint8_t *base;
	size_t len;
	_Atomic size_t next_page;
	atomic_bool done;
};

static void *writable_thread(void *p)
{
	struct wr_arg *a = p;
	for (size_t pg = 0; pg < a->len / TU_PAGE; pg++) {
		atomic_store(&a->next_page, pg);
		/* Add 0 atomically: a real write (it faults on a protected page)
		 * that keeps the content, even with writer threads on the page
		 * (who store atomically too, so TSan sees no race of ours). */
		uint64_t *w = (uint64_t *)(a->base + pg * TU_PAGE + (pg * 64) % TU_PAGE);
		__atomic_fetch_add(w, 0, __ATOMIC_RELAXED);
	}
	atomic_store(&a->done, true);
	return NULL;
}

void tu_check_writable(const char *file, int line, const char *what, void *base, size_t len,
                       unsigned timeout_ms)
{
	tu_phase("checking the memory is writable");
	uintptr_t bad;
	char perm[16];
	if (!maps_writable((uintptr_t)base, (uintptr_t)base + len, &bad, perm)) {
		tu_msg(file, line, "%s: %p is not writable after the snapshot (mapping: %s, page %zu of %zu)",
		       what, (void *)bad, perm, (size_t)(bad - (uintptr_t)base) / TU_PAGE, len / TU_PAGE);
		tu_fail_exit();
	}
	/* The thread is detached: if it is stuck in a fault, the test exits
	 * with it still blocked. */
	struct wr_arg *a = calloc(1, sizeof(*a));
	if (!a)
		FAIL("out of memory");
	a->base = base;
	a->len = len;
	pthread_t t;
	int rc = pthread_create(&t, NULL, writable_thread, a);
	if (rc)
		FAIL("pthread_create: %s", strerror(rc));
	pthread_detach(t);
	uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!atomic_load(&a->done)) {
		if (tu_now_ns() > deadline) {
			tu_msg(file, line, "%s: a write to page %zu of %zu (%p) did not complete in %u ms: "
			       "the page is still write-protected (or its fault is never resolved)",
			       what, atomic_load(&a->next_page), len / TU_PAGE,
			       (void *)((uint8_t *)base + atomic_load(&a->next_page) * TU_PAGE), timeout_ms);
			tu_fail_exit();
		}
		tu_sleep_ms(1);
	}
	free(a);
}

/* ---- writer threads ---- */

struct writer_arg {
	struct tu_writers *w;
	unsigned idx;
};

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;
	struct tu_writers *w = a->w;
	unsigned idx = a->idx;
	free(a);
	size_t pages = w->len / TU_PAGE;
	uint64_t step = 0;
	size_t pg = idx;
	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		if (atomic_load(&w->pause_req)) {
			pthread_mutex_lock(&w->mu);
			atomic_fetch_add(&w->parked, 1);
			pthread_cond_broadcast(&w->cv);
			while (atomic_load(&w->pause_req) && !atomic_load(&w->stop))
				pthread_cond_wait(&w->cv, &w->mu);
			atomic_fetch_sub(&w->parked, 1);
			pthread_mutex_unlock(&w->mu);
			continue;
		}
		step++;
		uint64_t v = ((uint64_t)idx << 56) | step;
		/* Spread the stores over the page so a page is written, not a line. */
		uint8_t *page = w->base + pg * TU_PAGE;
		__atomic_store_n((uint64_t *)(page + (step * 8) % TU_PAGE), v, __ATOMIC_RELAXED);
		atomic_store_explicit(&w->steps[idx], step, memory_order_relaxed);
		pg += w->n;
		if (pg >= pages)
			pg = idx;
	}
	return NULL;
}

void tu_writers_start(struct tu_writers *w, unsigned n, void *base, size_t len)
{
	memset(w, 0, sizeof(*w));
	if (n == 0 || n > 16 || len / TU_PAGE < n)
		FAIL("tu_writers_start: bad thread count %u for %zu bytes", n, len);
	w->n = n;
	w->base = base;
	w->len = len;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	for (unsigned i = 0; i < n; i++) {
		struct writer_arg *a = malloc(sizeof(*a));
		if (!a)
			FAIL("out of memory");
		a->w = w;
		a->idx = i;
		int rc = pthread_create(&w->th[i], NULL, writer_thread, a);
		if (rc)
			FAIL("pthread_create: %s", strerror(rc));
	}
	w->started = true;
}

int tu_writers_pause(struct tu_writers *w, unsigned timeout_ms)
{
	uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
	pthread_mutex_lock(&w->mu);
	atomic_store(&w->pause_req, true);
	while (atomic_load(&w->parked) < w->n) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		if (tu_now_ns() > deadline) {
			pthread_mutex_unlock(&w->mu);
			return -ETIMEDOUT;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void tu_writers_resume(struct tu_writers *w)
{
	pthread_mutex_lock(&w->mu);
	atomic_store(&w->pause_req, false);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void tu_writers_check_progress(const char *file, int line, struct tu_writers *w, unsigned timeout_ms)
{
	tu_phase("checking the writers progress");
	uint64_t before[16];
	for (unsigned i = 0; i < w->n; i++)
		before[i] = atomic_load(&w->steps[i]);
	uint64_t deadline = tu_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (unsigned i = 0; i < w->n; i++) {
		while (atomic_load(&w->steps[i]) == before[i]) {
			if (tu_now_ns() > deadline) {
				tu_msg(file, line, "writer thread %u of %u made no progress in %u ms "
				       "(stuck at step %" PRIu64 ": blocked in a write fault, or still paused)",
				       i, w->n, timeout_ms, before[i]);
				tu_fail_exit();
			}
			tu_sleep_ms(1);
		}
	}
}

void tu_writers_stop(struct tu_writers *w)
{
	if (!w->started)
		return;
	atomic_store(&w->stop, true);
	tu_writers_resume(w);
	for (unsigned i = 0; i < w->n; i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		int rc = pthread_timedjoin_np(w->th[i], NULL, &ts);
		if (rc)
			FAIL("writer thread %u did not stop within 5 s (%s): blocked in a write fault?", i,
			     strerror(rc));
	}
	w->started = false;
}
