/*
 * testutil.h - helpers shared by the test programs (libc only: this file is
 * linked into every test, so it must not depend on library functions that
 * may not exist yet; engine/reader helpers live in snaptest.h).
 *
 * Conventions: a test exits 0 (pass), 1 (fail, after a message saying what
 * and where) or 77 (skip, the last line of output says why).  CHECK* print
 * file:line, the failed condition and the reason, then exit 1.
 */
#ifndef BGSNAP_TESTUTIL_H
#define BGSNAP_TESTUTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#define TU_PAGE 4096u

void tu_fail_exit(void) __attribute__((noreturn));
void tu_msg(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* CHECK(cond, fmt, ...): fail the test with a message unless cond. */
#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			tu_msg(__FILE__, __LINE__, "CHECK(%s) failed", #cond);    \
			tu_msg(__FILE__, __LINE__, __VA_ARGS__);                  \
			tu_fail_exit();                                           \
		}                                                                 \
	} while (0)

/* CHECK_RC(expr, want): expr (an int return code) must equal want. */
#define CHECK_RC(expr, want, ...)                                                 \
	do {                                                                      \
		long long tu_got_ = (long long)(expr);                            \
		long long tu_want_ = (long long)(want);                           \
		if (tu_got_ != tu_want_) {                                        \
			tu_msg(__FILE__, __LINE__, "%s returned %lld (%s), expected %lld (%s)", \
			       #expr, tu_got_, tu_errname((int)tu_got_), tu_want_, tu_errname((int)tu_want_)); \
			tu_msg(__FILE__, __LINE__, __VA_ARGS__);                  \
			tu_fail_exit();                                           \
		}                                                                 \
	} while (0)

#define FAIL(...)                                                                 \
	do {                                                                      \
		tu_msg(__FILE__, __LINE__, __VA_ARGS__);                          \
		tu_fail_exit();                                                   \
	} while (0)

/* Skip the whole test (or the forked case) with exit 77; the message is the
 * reason. */
#define SKIP(...) tu_skip(__VA_ARGS__)
void tu_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* The reason the last case run by tu_run_case() gave for skipping. */
extern char tu_last_skip_reason[256];
/* Where tu_skip sends its reason inside a forked case (cases.c sets it). */
extern int tu_skip_fd;

/* "-ENOSPC" style name of a negative errno ("0", "-E?" if unknown). */
const char *tu_errname(int code);

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t tu_now_ns(void);
void tu_sleep_ms(unsigned ms);

/* A fresh private directory under $TMPDIR or /tmp, removed (with its files)
 * at exit by the process that created it. */
const char *tu_tmpdir(void);
/* Number of entries in `dir` other than . and ..; the names, space separated,
 * go to `names` (may be NULL).  -errno on failure. */
int tu_dir_entries(const char *dir, char *names, size_t names_len);
/* Removes every plain file in `dir` (not recursive). */
void tu_dir_clear(const char *dir);
/* Fails the test unless the file at `path` is mode 0600 and holds exactly
 * the `len` bytes at `want` (the first differing byte is reported). */
void tu_check_file(const char *path, const uint8_t *want, size_t len, const char *what);
/* Whether a path sink in `dir` writes an unnamed file: O_TMPFILE works
 * there and /proc can name it (the sink's own conditions, src/sink/sink.c). */
bool tu_unnamed_files(const char *dir);

/* mmap'd anonymous private memory, page aligned; fails the test on error. */
void *tu_map_anon(size_t len);
/* As tu_map_anon, between two PROT_NONE guard pages: a write one byte
 * outside [p, p+len) crashes the test at the faulty access. */
void *tu_map_guarded(size_t len);
/* A connected byte stream: a socketpair (socket true) or a pipe, both ends
 * close-on-exec; sv[0] reads, sv[1] writes.  Fails the test on error. */
void tu_stream_pair(int sv[2], bool socket);
/* In a child: mounts an empty tmpfs over /proc in a private mount namespace
 * (so the sink cannot name unnamed files) and fails the test unless the
 * probe for `dir` then says so.  0, or 77 with a line saying why (`why`
 * names what is skipped) when this process may not. */
int tu_hide_proc(const char *why, const char *dir);
/* The seed of a randomised test: $BGSNAP_FAULT_SEED if set (to replay a
 * run), else the clock; printed so that any run can be replayed. */
uint64_t tu_seed(void);
/* Reads the byte at p: 0, or the signal (SIGBUS, SIGSEGV) the read raised
 * (a poisoned or unmapped page), caught so that the test goes on. */
int tu_read_signal(const volatile void *p);
/* A 64-bit mixer (a bijection): well-spread values from counters. */
uint64_t tu_mix64(uint64_t x);
/* Fills each page with bytes derived from (seed, page index); pages whose
 * index % zero_every == zero_every-1 are left zero when zero_every > 0. */
void tu_fill(void *base, size_t len, uint64_t seed, unsigned zero_every);

/* Threads and file descriptors of this process (from /proc/self). */
int tu_count_threads(void);
int tu_count_fds(void);
/* True if this process has no child (every child was reaped). */
bool tu_no_children(void);

/*
 * Fails the test unless every page of [base, base+len) can be written now:
 * checks /proc/self/maps says the range is writable (a PROT_READ page would
 * crash the test instead of failing it), then a thread rewrites one byte of
 * every page with its own value; if it does not finish within timeout_ms a
 * page is still write-protected (the thread is blocked in a fault), which is
 * reported with the page index.  `what` names the range in messages.
 */
void tu_check_writable(const char *file, int line, const char *what, void *base, size_t len,
                       unsigned timeout_ms);
#define CHECK_WRITABLE(what, base, len) tu_check_writable(__FILE__, __LINE__, what, base, len, 5000)

/*
 * Writer threads that keep writing a region, like a host's mutators.  Thread
 * t of n owns the pages p with p % n == t and writes an increasing counter
 * into them.  They can be paused (for the pause hook) and stopped.  A writer
 * stuck in a write fault simply makes no progress, which
 * tu_writers_check_progress() reports.
 */
struct tu_writers {
	unsigned n;
	uint8_t *base;
	size_t len;
	pthread_t th[16];
	_Atomic uint64_t steps[16];
	atomic_bool stop;
	atomic_bool pause_req;
	atomic_uint parked;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started;
};
void tu_writers_start(struct tu_writers *w, unsigned n, void *base, size_t len);
/* Parks every writer (0), or -ETIMEDOUT if one did not park in timeout_ms. */
int tu_writers_pause(struct tu_writers *w, unsigned timeout_ms);
void tu_writers_resume(struct tu_writers *w);
/* Fails the test unless every writer makes progress within timeout_ms. */
void tu_writers_check_progress(const char *file, int line, struct tu_writers *w, unsigned timeout_ms);
#define CHECK_WRITERS_PROGRESS(w) tu_writers_check_progress(__FILE__, __LINE__, w, 5000)
/* Stops and joins the writers; fails the test if one does not stop in time. */
void tu_writers_stop(struct tu_writers *w);

/*
 * Runs fn(arg) in a forked child (so a crash, a hang or a leftover protected
 * page in one case does not hide the others), with a timeout.  Prints
 * "ok NAME", "skip NAME: ...", or "FAIL NAME: why".  Returns 0, 77 or 1.
 * fn returns 0, 1 or 77 (or exits with them).  Call only while this process
 * has a single thread.  timeout_s is multiplied by 3 under ASan, 5 under
 * TSan, or by $BGSNAP_TEST_TIMEOUT_SCALE.
 */
int tu_run_case(const char *name, int (*fn)(void *), void *arg, unsigned timeout_s);

/* Names what the test is doing, for the report of a case that times out
 * (which also lists every thread's kernel wait channel and system call). */
void tu_phase(const char *what);

/* Aggregates case results: fail if any failed, skip if all skipped. */
struct tu_tally { int pass, fail, skip; char skip_reason[256]; char failed[1024]; };
/* rc from tu_run_case; a skip records tu_last_skip_reason. */
void tu_tally_add(struct tu_tally *t, int rc);
void tu_tally_skip(struct tu_tally *t, const char *reason);
/* Prints a summary and exits 1 / 77 / 0. */
void tu_tally_exit(const struct tu_tally *t, const char *what) __attribute__((noreturn));

#endif
