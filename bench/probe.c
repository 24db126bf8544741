/*
 * probe.c - times the raw kernel primitives bgsnap's pause is compared
 * against, so that a pause is reported as a ratio to them measured in the
 * same run: one UFFDIO_WRITEPROTECT of a whole range,
 * one mprotect(PROT_READ) of it, one fork() of the process, each with its
 * undoing where that is a call (removing protection is what the background
 * writer pays for every saved page).  Each primitive is undone before the
 * next; nothing outlives the call.  Userfaultfd features
 * are probed at run time (the build headers may be older than the kernel).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/clock.h"
#include "probe.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1ull << 13)
#endif

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

#define PAGE_PROBES 512u

/* A thread of this process that keeps reading the region on another CPU:
 * every protection change must then flush its TLB too (an inter-processor
 * interrupt, a hypercall on a paravirtualised guest). */
struct spinner {
	const volatile uint8_t *mem;
	size_t len;
	_Atomic int stop, running;
};

static void *spin(void *arg)
{
	struct spinner *s = arg;
	atomic_store(&s->running, 1);
	uint64_t sum = 0;
	for (size_t off = 0; !atomic_load_explicit(&s->stop, memory_order_relaxed); off = (off + 4096) % s->len)
		sum += s->mem[off];
	return (void *)(uintptr_t)sum;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median time of one UFFDIO_WRITEPROTECT removal of a single page, over
 * PAGE_PROBES pages of a range that is write-protected whole. */
static double time_page_unwp(int fd, uint8_t *mem, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)mem, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	if (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0)
		return -1;
	size_t n = len / 4096 < PAGE_PROBES ? len / 4096 : PAGE_PROBES;
	size_t stride = len / 4096 / n * 4096;
	double t[PAGE_PROBES];
	for (size_t i = 0; i < n; i++) {
		struct uffdio_writeprotect one = { .range = { .start = (uintptr_t)(mem + i * stride), .len = 4096 } };
		double t0 = mono_us();
		if (ioctl(fd, UFFDIO_WRITEPROTECT, &one) != 0)
			return -1;
		t[i] = mono_us() - t0;
	}
	/* The median: a call the scheduler preempted says nothing of the call. */
	qsort(t, n, sizeof(t[0]), cmp_double);
	double us = t[n / 2];
	wp.mode = 0;
	ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
	return us;
}

/* time_page_unwp alone, then with a thread reading the region meanwhile. */
static void time_page_unwp_pair(int fd, uint8_t *mem, size_t len, double *alone, double *busy)
{
	*alone = time_page_unwp(fd, mem, len);
	struct spinner s = { .mem = mem, .len = len };
	pthread_t tid;
	*busy = -1;
	if (pthread_create(&tid, NULL, spin, &s) != 0)
		return;
	while (!atomic_load(&s.running))
		;
	*busy = time_page_unwp(fd, mem, len);
	atomic_store(&s.stop, 1);
	pthread_join(tid, NULL);
}

static double time_wp(void *mem, size_t len, double *unwp_us, uint64_t *features, double *page_us, double *busy_us)
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
		time_page_unwp_pair(fd, mem, len, page_us, busy_us);
	}
	struct uffdio_range range = { .start = (uintptr_t)mem, .len = len };
	ioctl(fd, UFFDIO_UNREGISTER, &range);
out:
	close(fd);
	return r;
}

int wp_probe(void *mem, size_t len, struct wp_probe_result *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	out->page_unwp_us = out->page_unwp_busy_us = -1;
	out->wp_us = time_wp(mem, len, &out->unwp_us, &out->uffd_features, &out->page_unwp_us,
	                     &out->page_unwp_busy_us);

	double t0 = mono_us();
	int rc = mprotect(mem, len, PROT_READ);
	out->mprotect_us = rc == 0 ? mono_us() - t0 : -1;
	t0 = mono_us();
	if (rc == 0 && mprotect(mem, len, PROT_READ | PROT_WRITE) != 0) {
		snprintf(err, err_len, "mprotect back to read-write: %s", strerror(errno));
		return -errno;
	}
	out->mprotect_rw_us = rc == 0 ? mono_us() - t0 : -1;

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
