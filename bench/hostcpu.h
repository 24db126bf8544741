/*
 * hostcpu.h - where the writer threads' time went, from the kernel's own
 * per-thread accounting (/proc/self/task/TID/{schedstat,stat,status}):
 * on a CPU (user, system), waiting for one (run queue: the scheduler's
 * delay), and off CPU otherwise (blocked: in a write fault waiting for the
 * handler, for buffer space, on a lock), with the faults and context
 * switches behind them.  Read before the snapshot and at its end; the
 * difference over the wall time is the breakdown of the host's loss.
 */
#ifndef BGSNAP_BENCH_HOSTCPU_H
#define BGSNAP_BENCH_HOSTCPU_H

#include <stdint.h>

#include "workload.h"

struct host_cpu {
	double t;                /* when read (mono_s)                       */
	unsigned threads;        /* writer threads summed                    */
	double run_ms;           /* on a CPU (schedstat)                     */
	double runq_ms;          /* runnable, waiting for a CPU (schedstat)  */
	double user_ms, sys_ms;  /* stat, in clock ticks                     */
	uint64_t minflt;         /* minor faults                             */
	uint64_t vcsw, ivcsw;    /* voluntary (blocked), involuntary switches */
};

/* Sums the counters of the running writer threads; 0 or -errno. */
int host_cpu_read(const wl *w, struct host_cpu *out);
/* b - a, field by field (t: the wall time between). */
void host_cpu_diff(const struct host_cpu *a, const struct host_cpu *b, struct host_cpu *out);

#endif
