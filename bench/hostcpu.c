/* hostcpu.c - the writer threads' time, by the kernel's accounting (hostcpu.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/clock.h"
#include "hostcpu.h"

static int read_file(pid_t tid, const char *what, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/%s", (int)tid, what);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	return 0;
}

static int one_thread(pid_t tid, struct host_cpu *acc)
{
	char buf[4096];
	unsigned long long run, wait, minflt, ut, st, v = 0, iv = 0;
	if (read_file(tid, "schedstat", buf, sizeof(buf)) < 0 || sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return -EIO;
	/* stat: fields after the command's closing parenthesis; minflt is the
	 * 10th, utime and stime the 14th and 15th of the whole line. */
	if (read_file(tid, "stat", buf, sizeof(buf)) < 0)
		return -EIO;
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %llu %*u %*u %*u %llu %llu", &minflt, &ut, &st) != 3)
		return -EIO;
	if (read_file(tid, "status", buf, sizeof(buf)) < 0)
		return -EIO;
	const char *a = strstr(buf, "\nvoluntary_ctxt_switches:"), *b = strstr(buf, "\nnonvoluntary_ctxt_switches:");
	if (a)
		sscanf(a, "\nvoluntary_ctxt_switches: %llu", &v);
	if (b)
		sscanf(b, "\nnonvoluntary_ctxt_switches: %llu", &iv);
	double tick_ms = 1000.0 / (double)sysconf(_SC_CLK_TCK);
	acc->run_ms += run / 1e6;
	acc->runq_ms += wait / 1e6;
	acc->user_ms += ut * tick_ms;
	acc->sys_ms += st * tick_ms;
	acc->minflt += minflt;
	acc->vcsw += v;
	acc->ivcsw += iv;
	return 0;
}

int host_cpu_read(const wl *w, struct host_cpu *out)
{
	memset(out, 0, sizeof(*out));
	out->t = mono_s();
	for (unsigned t = 0; t < wl_get_params(w)->threads; t++) {
		int r = one_thread(wl_thread_tid(w, t), out);
		if (r < 0)
			return r;
		out->threads++;
	}
	return 0;
}

void host_cpu_diff(const struct host_cpu *a, const struct host_cpu *b, struct host_cpu *out)
{
	out->t = b->t - a->t;
	out->threads = b->threads;
	out->run_ms = b->run_ms - a->run_ms;
	out->runq_ms = b->runq_ms - a->runq_ms;
	out->user_ms = b->user_ms - a->user_ms;
	out->sys_ms = b->sys_ms - a->sys_ms;
	out->minflt = b->minflt - a->minflt;
	out->vcsw = b->vcsw - a->vcsw;
	out->ivcsw = b->ivcsw - a->ivcsw;
}
