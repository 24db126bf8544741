/*
 * wp_probe.c - times the raw kernel primitives bgsnap's pause is compared
 * against (design brief section 7): one UFFDIO_WRITEPROTECT of a whole range,
 * one mprotect(PROT_READ) of it, one fork() of the process, each with its
 * undoing where that is a call; and what a reader of the range pays while
 * another thread's protection changes shoot down the TLB.  Each primitive
 * is undone before the next; nothing outlives the call.  Userfaultfd features
 * are probed at run time (the build headers may be older than the kernel).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ull << 13)
#endif

static double mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	return fd < 0 ? -errno : fd;
}

/* Opens a userfaultfd with `want` & supported features; returns fd or -errno. */
static int uffd_open_api(uint64_t want, uint64_t *granted)
{
	int fd = uffd_open();
	if (fd < 0)
		return fd;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	if (ioctl(fd, UFFDIO_API, &api) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	uint64_t avail = api.features;
	close(fd);
	/* UFFDIO_API may be called once per descriptor: open a second one. */
	fd = uffd_open();
	if (fd < 0)
		return fd;
	api = (struct uffdio_api){ .api = UFFD_API, .features = want & avail };
	if (ioctl(fd, UFFDIO_API, &api) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*granted = api.features;
	return fd;
}

static double time_wp(void *mem, size_t len, double *unwp_us, uint64_t *features)
{
	*unwp_us = -1;
	int fd = uffd_open_api(UFFD_FEATURE_WP_UNPOPULATED, features);
	if (fd < 0)
		return -1;
	double r = -1;
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)mem, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
		goto out;
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)mem, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	double t0 = mono_us();
	int rc = ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
	double t1 = mono_us();
	if (rc == 0) {
		r = t1 - t0;
		wp.mode = 0;
		t0 = mono_us();
		if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0)
			*unwp_us = mono_us() - t0;
	}
	struct uffdio_range range = { .start = (uintptr_t)mem, .len = len };
	ioctl(fd, UFFDIO_UNREGISTER, &range);
out:
	close(fd);
	return r;
}

static uint64_t read_pass(const void *mem, size_t len)
{
	const volatile uint64_t *p = mem;
	uint64_t x = 0;
	for (size_t i = 0; i < len / 8; i++)
		x ^= p[i];
	return x;
}

struct flipper {
	uint8_t *page;
	atomic_bool stop;
	atomic_ullong changes;
};

static void *flip_main(void *arg)
{
	struct flipper *f = arg;
	while (!atomic_load(&f->stop)) {
		if (mprotect(f->page, 4096, PROT_READ) != 0 || mprotect(f->page, 4096, PROT_READ | PROT_WRITE) != 0)
			break;
		f->page[0]++;   /* present and writable again, as a faulted page is */
		atomic_fetch_add(&f->changes, 2);
	}
	return NULL;
}

/* Microseconds per read pass of [mem, mem+len), passes repeated for at
 * least 50 ms so that a small range still gives a steady figure. */
static double timed_reads(const void *mem, size_t len, uint64_t *sink)
{
	double t0 = mono_us(), t;
	unsigned n = 0;
	do {
		*sink ^= read_pass(mem, len);
		n++;
	} while ((t = mono_us() - t0) < 50000);
	return t / n;
}

/* read_us, read_flush_us, flushes_per_s; -1 where they cannot be timed. */
static void time_reads(const void *mem, size_t len, struct wp_probe_result *out)
{
	out->read_us = out->read_flush_us = out->flushes_per_s = -1;
	/* Untimed first: a first user access to a page the kernel populated
	 * (MADV_POPULATE_WRITE) costs a hypervisor exit on these machines. */
	uint64_t sink = read_pass(mem, len);
	out->read_us = timed_reads(mem, len, &sink);
	struct flipper f = { .page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) };
	if (f.page == MAP_FAILED)
		return;
	pthread_t th;
	if (pthread_create(&th, NULL, flip_main, &f) == 0) {
		/* From its first change on (a second at most). */
		double w0 = mono_us();
		while (!atomic_load(&f.changes) && mono_us() - w0 < 1e6)
			sched_yield();
		unsigned long long c0 = atomic_load(&f.changes);
		double t0 = mono_us();
		double per_pass = timed_reads(mem, len, &sink);
		double t1 = mono_us();
		unsigned long long c1 = atomic_load(&f.changes);
		atomic_store(&f.stop, true);
		pthread_join(th, NULL);
		if (c0) {
			out->read_flush_us = per_pass;
			out->flushes_per_s = (double)(c1 - c0) / ((t1 - t0) / 1e6);
		}
	}
	f.page[1] = (uint8_t)sink;   /* keeps the reads */
	munmap(f.page, 4096);
}

int wp_probe(void *mem, size_t len, struct wp_probe_result *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	out->wp_us = time_wp(mem, len, &out->unwp_us, &out->uffd_features);

	double t0 = mono_us();
	int rc = mprotect(mem, len, PROT_READ);
	out->mprotect_us = rc == 0 ? mono_us() - t0 : -1;
	t0 = mono_us();
	if (rc == 0 && mprotect(mem, len, PROT_READ | PROT_WRITE) != 0) {
		snprintf(err, err_len, "mprotect back to read-write: %s", strerror(errno));
		return -errno;
	}
	out->mprotect_rw_us = rc == 0 ? mono_us() - t0 : -1;
	time_reads(mem, len, out);

	t0 = mono_us();
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	out->fork_us = pid > 0 ? mono_us() - t0 : -1;
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	if (out->wp_us < 0 && out->mprotect_us < 0 && out->fork_us < 0) {
		snprintf(err, err_len, "no primitive could be timed");
		return -ENOTSUP;
	}
	return 0;
}
