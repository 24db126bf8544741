/*
 * probe.h - `bgsnap bench --probe-wp`: the raw kernel primitives a pause is
 * compared against, timed once on the bench's memory with no writer
 * running.
 */
#ifndef BGSNAP_BENCH_PROBE_H
#define BGSNAP_BENCH_PROBE_H

#include <stddef.h>
#include <stdint.h>

struct wp_probe_result {
	double wp_us;         /* UFFDIO_WRITEPROTECT of the whole range          */
	double unwp_us;       /* removing it again in one call                   */
	double mprotect_us;   /* mprotect(PROT_READ) of the whole range          */
	double mprotect_rw_us; /* mprotect back to read-write                    */
	double fork_us;       /* fork() of this process                          */
	double page_unwp_us;  /* removing it from one 4 KiB page (median of 512) */
	double page_unwp_busy_us; /* the same while another thread of this
	                         process reads the memory (TLB shootdown)   */
	uint64_t uffd_features;
};
/* Times each primitive once on [mem, mem+len).  Returns 0 or -errno with a
 * message; a primitive that cannot run here is reported as -1. */
int wp_probe(void *mem, size_t len, struct wp_probe_result *out, char *err, size_t err_len);

#endif
