/*
 * report.c - what `bgsnap bench` prints: one JSON object per line and
 * method (--json; the field names are the command-line contract's), or a
 * table with the ratios between methods measured in the same run, and the
 * raw primitives of --probe-wp.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli/cli.h"
#include "cli/json.h"

/* The fields common to every line: what ran on what. */
static void json_setup(struct json *j, const struct bench_opts *o, const struct bench_result *res)
{
	json_string(j, "method", bgsnap_method_name(res->status == BENCH_OK ? res->ran : res->method));
	if (res->ran != res->method)
		json_string(j, "requested", bgsnap_method_name(res->method));
	json_u64(j, "mem_bytes", o->mem);
	json_u64(j, "threads", o->threads);
	json_string(j, "pattern", wl_pattern_name(o->pattern));
	json_string(j, "fill", wl_fill_name(o->fill));
	json_u64(j, "buffer_bytes", o->buffer);
	json_bool(j, "thp", o->thp);
	json_string(j, "memory", wl_memory_name(o->memory));
	if (o->noise)
		json_bool(j, "noise", true);
	if (o->out) {
		static const char *const kinds[] = { "file", "exec", "unix", "fd" };
		json_string(j, "out_kind", kinds[o->out_kind]);
	}
	json_bool(j, "direct_io", res->st.direct_io);
	json_string(j, "compress", cli_compress_name(o->compress));
	json_u64(j, "max_bytes_per_s", o->max_rate);
	if (o->compress_level)
		json_raw(j, "compress_level", "%d", o->compress_level);
	if (o->compress_threads)
		json_u64(j, "compress_threads", o->compress_threads);
	if (o->page_aligned)
		json_bool(j, "page_aligned", true);
	if (o->repeat > 1)
		json_u64(j, "round", res->round);
}

/* A completed snapshot's measurements. */
static void json_measured(struct json *j, const struct bench_opts *o, const struct bench_result *res)
{
	const struct bgsnap_stats *s = &res->st;
	const struct wl_latency *l = &res->lat;
	json_u64(j, "pause_us", s->pause_us);
	json_u64(j, "wp_us", s->wp_us);
	json_double(j, "total_ms", 3, s->total_us / 1000.0);
	json_u64(j, "bytes_written", s->bytes_written);
	json_u64(j, "bytes_stored", res->file_bytes);
	json_u64(j, "writer_us", s->writer_us);
	json_u64(j, "achieved_bytes_per_s", s->achieved_bytes_per_s);
	if (o->compress != BGSNAP_COMPRESS_NONE) {
		json_u64(j, "chunks_compressed", s->chunks_compressed);
		json_u64(j, "chunks_raw", s->chunks_raw);
	}
	json_u64(j, "pages_total", s->pages_total);
	json_u64(j, "pages_zero", s->pages_zero);
	json_u64(j, "pages_faulted", s->pages_faulted);
	json_u64(j, "unprotect_calls", s->unprotect_calls);
	json_double(j, "first_write_us_p50", 2, l->p50_us);
	json_double(j, "first_write_us_p99", 2, l->p99_us);
	json_double(j, "first_write_us_max", 2, l->max_us);
	json_u64(j, "first_write_samples", l->samples);
	json_u64(j, "first_write_traps", l->traps);
	json_double(j, "trap_us_p50", 2, l->trap_p50_us);
	json_double(j, "trap_us_p99", 2, l->trap_p99_us);
	json_double(j, "writes_per_s_before", 0, res->wps_before);
	json_double(j, "writes_per_s_during", 0, res->wps_during);
	json_double(j, "writes_per_s_after", 0, res->wps_after);
	if (res->host_measured) {
		json_double(j, "host_lost_ms", 1, res->host_lost_ms);
		json_double(j, "host_lost_span_ms", 0, res->host_lost_span_ms);
		json_bool(j, "host_recovered", res->host_recovered);
	}
	if (res->cpu_measured) {
		const struct host_cpu *c = &res->cpu;
		double wall = c->t * 1000.0 * (double)c->threads;
		json_double(j, "host_wall_ms", 1, wall);
		json_double(j, "host_run_ms", 1, c->run_ms);
		json_double(j, "host_runq_ms", 1, c->runq_ms);
		json_double(j, "host_blocked_ms", 1, wall - c->run_ms - c->runq_ms);
		json_double(j, "host_user_ms", 0, c->user_ms);
		json_double(j, "host_sys_ms", 0, c->sys_ms);
		json_u64(j, "host_minflt", c->minflt);
		json_u64(j, "host_vcsw", c->vcsw);
		json_u64(j, "host_ivcsw", c->ivcsw);
	}
	json_u64(j, "extra_mem_peak_bytes", res->extra_mem);
	json_string(j, "extra_mem_source", res->extra_src);
	json_double(j, "unprotect_ms", 1, s->unprotect_us / 1000.0);
	json_double(j, "commit_ms", 1, s->commit_us / 1000.0);
	json_double(j, "prewp_ms", 3, s->prewp_us / 1000.0);
	json_u64(j, "reprotect_pages", s->reprotect_pages);
	json_u64(j, "finished_paused", (uint64_t)s->finished_paused);
	json_double(j, "finish_pause_ms", 3, s->finish_pause_us / 1000.0);
	json_u64(j, "finish_pages", s->finish_pages);
	json_double(j, "finish_hook_ms", 3, s->finish_hook_us / 1000.0);
	json_double(j, "fault_wait_ms", 1, s->fault_wait_us / 1000.0);
	json_u64(j, "fault_threads", s->fault_threads);
	/* A stream's: the destination, not the bench's unlinked copy. */
	if (res->keep)
		json_string(j, "out", o->out_kind ? o->out : res->path);
}

static void json_restore(struct json *j, const struct bench_restore_result *rr)
{
	if (rr->which & BENCH_RESTORE_EAGER) {
		json_double(j, "restore_ms", 3, rr->restore_ms);
		json_double(j, "restore_read_ms", 3, rr->read_ms);
		json_u64(j, "restore_file_bytes", rr->file_bytes);
		json_bool(j, "restore_uncached", rr->which & BENCH_RESTORE_UNCACHED);
		json_raw(j, "restore_huge_pages", "%" PRId64, rr->huge_pages);
	}
	if (rr->which & BENCH_RESTORE_MAP) {
		if (!(rr->which & BENCH_RESTORE_EAGER)) {
			json_double(j, "restore_read_ms", 3, rr->read_ms);
			json_u64(j, "restore_file_bytes", rr->file_bytes);
			json_bool(j, "restore_uncached", rr->which & BENCH_RESTORE_UNCACHED);
		}
		json_double(j, "restore_map_ms", 3, rr->map_ms);
		json_double(j, "restore_map_noverify_ms", 3, rr->map_noverify_ms);
		json_u64(j, "restore_map_mapped", rr->map_mapped);
	}
	if (rr->which & BENCH_RESTORE_LAZY) {
		json_u64(j, "resume_us", rr->resume_us);
		json_double(j, "lazy_total_ms", 3, rr->lazy_total_ms);
		json_u64(j, "lazy_pages_demand", rr->lazy_demand);
		json_double(j, "lazy_touch_p50_us", 1, rr->touch_p50_us);
		json_double(j, "lazy_touch_p99_us", 1, rr->touch_p99_us);
		json_u64(j, "lazy_pages_prefetched", rr->lazy_prefetched);
	}
	json_bool(j, "restore_verified", rr->which && rr->verified);
	if (!rr->verified && rr->msg[0])
		json_string(j, "restore_error", rr->msg);
}

void bench_report_json(const struct bench_opts *o, const struct bench_result *res)
{
	struct json j;
	json_begin(&j, stdout);
	json_open(&j, NULL);
	json_setup(&j, o, res);
	if (res->status == BENCH_SKIPPED) {
		json_string(&j, "skipped", res->msg);
	} else {
		if (res->status == BENCH_OK) {
			json_measured(&j, o, res);
			json_raw(&j, "huge_pages_before", "%" PRId64, res->huge_before);
			json_raw(&j, "huge_pages_after", "%" PRId64, res->huge_after);
		}
		if (res->status == BENCH_OK && o->restore)
			json_restore(&j, &res->rr);
		bool verified = res->status == BENCH_OK && res->verified;
		json_bool(&j, "verified", verified);
		/* A stream: the bench checked its own copy of the bytes sent. */
		if (o->out_kind && res->status == BENCH_OK)
			json_string(&j, "verified_of", "copy");
		if (!verified)
			json_string(&j, "error", res->msg);
	}
	json_close(&j);
	json_end_line(&j);
}

const struct bench_result *bench_find_ok(const struct bench_result *rs, int n, int method)
{
	for (int i = 0; i < n; i++)
		if (rs[i].status == BENCH_OK && rs[i].ran == method)
			return &rs[i];
	return NULL;
}

static void ratio(const char *what, double a, double b)
{
	if (b > 0)
		printf("  %-40s %8.3g   (%.1f / %.1f)\n", what, a / b, a, b);
}

static void table_rows(const struct bench_result *rs, int n)
{
	printf("%-11s %9s %9s %9s %9s %9s %8s %9s %9s %9s %11s %11s %11s %9s %9s %11s %s\n", "method", "pause_us",
	       "wp_us", "prewp_ms", "total_ms", "MiB_out", "faulted", "fw_p50us", "fw_p99us", "fw_max_us",
	       "w/s_before", "w/s_during", "w/s_after", "lost_ms", "extra_MiB", "huge_b/a", "verified");
	for (int i = 0; i < n; i++) {
		const struct bench_result *r = &rs[i];
		if (r->status != BENCH_OK) {
			printf("%-11s %s: %s\n", bgsnap_method_name(r->method),
			       r->status == BENCH_SKIPPED ? "skipped" : "error", r->msg);
			continue;
		}
		const struct bgsnap_stats *s = &r->st;
		printf("%-11s %9" PRIu64 " %9" PRIu64 " %9.1f %9.1f %9.1f %8" PRIu64
		       " %9.1f %9.1f %9.1f %11.0f %11.0f %11.0f %9.1f %9.1f%s %5" PRId64 "/%-5" PRId64 " %s\n",
		       bgsnap_method_name(r->ran), s->pause_us, s->wp_us, s->prewp_us / 1000.0, s->total_us / 1000.0,
		       s->bytes_written / 1048576.0, s->pages_faulted, r->lat.p50_us, r->lat.p99_us, r->lat.max_us,
		       r->wps_before, r->wps_during, r->wps_after, r->host_lost_ms, r->extra_mem / 1048576.0, strcmp(r->extra_src, "engine") ? "*" : " ",
		       r->huge_before, r->huge_after, r->verified ? "yes" : "NO");
	}
}

static void table_restores(const struct bench_result *rs, int n)
{
	for (int i = 0; i < n; i++) {
		const struct bench_restore_result *rr = &rs[i].rr;
		if (rs[i].status != BENCH_OK || !rs[i].verified || !rr->which)
			continue;
		printf("restore %-11s", bgsnap_method_name(rs[i].ran));
		if (rr->which & BENCH_RESTORE_EAGER)
			printf(" eager %.1f ms (file read %.1f ms, throughput %.2fx of it; %" PRId64 " huge pages)",
			       rr->restore_ms, rr->read_ms, rr->restore_ms > 0 ? rr->read_ms / rr->restore_ms : 0,
			       rr->huge_pages);
		if (rr->which & BENCH_RESTORE_MAP)
			printf(" map %.1f ms (%.2fx the file read of %.1f ms; %.1f ms unchecked)%s", rr->map_ms,
			       rr->read_ms > 0 ? rr->map_ms / rr->read_ms : 0, rr->read_ms, rr->map_noverify_ms,
			       rr->map_mapped ? "" : " [copied, not mapped]");
		if (rr->which & BENCH_RESTORE_LAZY)
			printf(" lazy usable in %" PRIu64 " us (all in %.1f ms)", rr->resume_us, rr->lazy_total_ms);
		printf(", verified %s\n", rr->verified ? "yes" : "NO");
	}
}

/* The host's work lost to a method against what stopping cost it, and
 * its speed after the snapshot against before. */
static void host_lost_ratio(const struct bench_result *r, const struct bench_result *stp)
{
	char what[64];
	const char *name = bgsnap_method_name(r->ran);
	if (stp && r->host_measured && stp->host_measured && stp->host_lost_ms > 0) {
		snprintf(what, sizeof(what), "host lost %s / stop (ms)", name);
		ratio(what, r->host_lost_ms, stp->host_lost_ms);
	}
	snprintf(what, sizeof(what), "writes/s after / before %s", name);
	ratio(what, r->wps_after, r->wps_before);
}

/* The ratios of a tracked method (uffd, uffd-signal, mprotect) to its own
 * write-protect step, the raw primitive, fork and stop. */
static void method_ratios(const struct bench_result *r, const struct bench_result *fk,
                          const struct bench_result *stp, double raw_wp_us)
{
	char what[64];
	const char *name = bgsnap_method_name(r->ran);
	snprintf(what, sizeof(what), "pause %s / its wp_us", name);
	ratio(what, (double)r->st.pause_us, (double)r->st.wp_us);
	if (raw_wp_us > 0) {
		snprintf(what, sizeof(what), "pause %s / raw wp", name);
		ratio(what, (double)r->st.pause_us, raw_wp_us);
	}
	if (fk) {
		snprintf(what, sizeof(what), "pause %s / fork", name);
		ratio(what, (double)r->st.pause_us, (double)fk->st.pause_us);
		snprintf(what, sizeof(what), "first-write p50 %s / fork", name);
		ratio(what, r->lat.p50_us, fk->lat.p50_us);
		snprintf(what, sizeof(what), "trapped-write p50 %s / fork", name);
		ratio(what, r->lat.trap_p50_us, fk->lat.trap_p50_us);
	}
	if (stp) {
		snprintf(what, sizeof(what), "total %s / stop", name);
		ratio(what, r->st.total_us / 1000.0, stp->st.total_us / 1000.0);
	}
	host_lost_ratio(r, stp);
}

void bench_report_table(const struct bench_opts *o, const struct bench_result *rs, int n, double raw_wp_us)
{
	printf("bench: %" PRIu64 " MiB, %u writer thread%s, pattern %s, copy buffer %" PRIu64 " KiB, %s\n\n",
	       o->mem >> 20, o->threads, o->threads == 1 ? "" : "s", wl_pattern_name(o->pattern), o->buffer >> 10,
	       wl_memory_name(o->memory));
	table_rows(rs, n);
	if (o->restore)
		table_restores(rs, n);
	const struct bench_result *fk = bench_find_ok(rs, n, BGSNAP_METHOD_FORK);
	const struct bench_result *stp = bench_find_ok(rs, n, BGSNAP_METHOD_STOP);
	bool estimated = false;
	for (int i = 0; i < n; i++)
		estimated |= rs[i].status == BENCH_OK && rs[i].ran == BGSNAP_METHOD_FORK &&
		             strcmp(rs[i].extra_src, "engine");
	if (estimated)
		printf("(* estimated: pages first written during the snapshot x 4 KiB)\n");
	if (!((fk || stp) && n >= 2) && !(raw_wp_us > 0))
		return;
	printf("\nratios (same run):\n");
	static const int tracked[] = { BGSNAP_METHOD_UFFD, BGSNAP_METHOD_UFFD_SIGNAL, BGSNAP_METHOD_MPROTECT };
	for (int i = 0; i < 3; i++) {
		const struct bench_result *r = bench_find_ok(rs, n, tracked[i]);
		if (r)
			method_ratios(r, fk, stp, raw_wp_us);
	}
	if (fk && stp)
		ratio("total fork / stop", fk->st.total_us / 1000.0, stp->st.total_us / 1000.0);
	if (fk)
		host_lost_ratio(fk, stp);
}

void bench_report_probe(const struct bench_opts *o, const struct wp_probe_result *pr)
{
	if (o->json) {
		struct json j;
		json_begin(&j, stdout);
		json_open(&j, NULL);
		json_string(&j, "probe", "raw");
		json_u64(&j, "mem_bytes", o->mem);
		json_bool(&j, "thp", o->thp);
		json_double(&j, "wp_us", 1, pr->wp_us);
		json_double(&j, "unwp_us", 1, pr->unwp_us);
		json_double(&j, "mprotect_us", 1, pr->mprotect_us);
		json_double(&j, "mprotect_rw_us", 1, pr->mprotect_rw_us);
		json_double(&j, "fork_us", 1, pr->fork_us);
		json_double(&j, "page_unwp_us", 2, pr->page_unwp_us);
		json_double(&j, "page_unwp_busy_us", 2, pr->page_unwp_busy_us);
		json_u64(&j, "uffd_features", pr->uffd_features);
		json_close(&j);
		json_end_line(&j);
		return;
	}
	printf("raw primitives on this memory (no writers): UFFDIO_WRITEPROTECT %.0f us, its removal %.0f us "
	       "(%.1fx), mprotect %.0f us, back %.0f us (%.1fx), fork %.0f us\n",
	       pr->wp_us, pr->unwp_us, pr->wp_us > 0 ? pr->unwp_us / pr->wp_us : 0, pr->mprotect_us,
	       pr->mprotect_rw_us, pr->mprotect_us > 0 ? pr->mprotect_rw_us / pr->mprotect_us : 0, pr->fork_us);
	printf("removing write protection from one 4 KiB page: %.2f us alone, %.2f us while another thread "
	       "reads the memory (TLB shootdown to its CPU)\n", pr->page_unwp_us, pr->page_unwp_busy_us);
	fflush(stdout);
}
