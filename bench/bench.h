/*
 * bench.h - `bgsnap bench`: writer threads keep writing one anonymous region
 * while each method snapshots it; every snapshot is verified page by page
 * against the pause-instant content (oracle.h), and every method is
 * measured the same way so that methods compare as ratios within one run.
 *
 * Methods run one after another on the same memory in one process.  Between
 * them the writers are stopped and restarted; their step counts continue, so
 * the oracle only replays the steps made since the previous verification.
 *
 * The parts, one a file: options.c (the command line), run.c (one method:
 * engine, hooks, writers, write rates), noise.c (--noise), verify.c (a
 * snapshot against the oracle, and the --corrupt-check test hook),
 * restore.c (--restore), probe.c (--probe-wp), report.c (the table and the
 * JSON lines, whose field names the command-line contract fixes), summary.c
 * (--repeat's medians), cmd_bench.c (the rounds).
 */
#ifndef BGSNAP_BENCH_H
#define BGSNAP_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "bgsnap.h"
#include "cli/progress.h"
#include "hostcpu.h"
#include "oracle.h"
#include "probe.h"
#include "restore.h"
#include "workload.h"

#define BENCH_MAX_METHODS 8
#define REPEAT_MAX 50u

/* --corrupt-check: damages the verification on purpose to show it fails. */
enum corrupt_mode { CORRUPT_NONE = 0, CORRUPT_STEPS, CORRUPT_PAGE, CORRUPT_FILE };

struct bench_opts {
	uint64_t mem;
	unsigned threads;
	int pattern;
	int methods[BENCH_MAX_METHODS];
	int nmethods;
	bool list;               /* several methods: refused ones are skipped */
	const char *out;         /* --out: a file's path, or the stream spec */
	int out_kind;            /* enum dest_kind (cli/dest.h) of --out     */
	uint64_t buffer;
	bool thp;                /* memory == WL_MEM_THP                      */
	int memory;              /* enum wl_memory (--memory; --thp: thp)    */
	bool no_pre_protect;
	bool noise;
	bool buffered_io;        /* options.direct_io = 0                    */
	bool json;
	unsigned before_ms;
	unsigned after_ms;       /* host-loss watch after the end, 0: none   */
	const char *series;      /* --series: the rate windows, appended     */
	uint64_t seed;
	bool probe_wp;
	bool method_given;
	bool no_prefault;
	int corrupt;             /* enum corrupt_mode                        */
	int restore;             /* BENCH_RESTORE_* mask, 0: none           */
	bool restore_uncached;   /* file out of the page cache before each  */
	unsigned wp_threads;     /* 0: the library's choice                  */
	unsigned fault_around;   /* 0: the library's default                 */
	int64_t finish_paused;   /* BGSNAP_PARAM_FINISH_PAUSED, if _set      */
	bool finish_paused_set;
	unsigned repeat;         /* rounds of the method list, 1..REPEAT_MAX */
	int fill;                /* enum wl_fill                             */
	int compress;            /* enum bgsnap_compress                     */
	enum progress_mode progress; /* --progress, --quiet                  */
	int compress_level;      /* 0: the library's default                 */
	unsigned compress_threads; /* 0: the library's choice                */
	bool page_aligned;         /* format version 4 (--page-aligned)      */
	uint64_t max_rate;       /* writer bytes/s limit, 0: none            */
	unsigned incremental;    /* --incremental: snapshots after the full one */
	double dirty_fraction;   /* --dirty-fraction: pages written between them */
	unsigned reset_loop;     /* --reset-loop: rounds                      */
	uint64_t dirty_pages;    /* --dirty-pages: pages written per round    */
};

enum bench_status { BENCH_OK = 0, BENCH_ERROR, BENCH_SKIPPED };

/* One method's run. */
struct bench_result {
	int method;              /* requested                               */
	int ran;                 /* stats.method                            */
	enum bench_status status;
	char msg[512];
	struct bgsnap_stats st;
	struct wl_latency lat;
	double wps_before, wps_during;
	double wps_after;        /* over HOSTLOSS_AFTER_S after the end      */
	bool host_measured;      /* the three below are set                 */
	double host_lost_ms;     /* cli/hostloss.h                          */
	double host_lost_span_ms;/* pause .. where the sum stopped           */
	bool host_recovered;     /* the rate came back within the tail       */
	bool cpu_measured;
	struct host_cpu cpu;     /* the writers' time from start to end      */
	uint64_t extra_mem;
	const char *extra_src;   /* "engine", or "estimate" (fork)          */
	bool verified;
	int64_t huge_before;     /* the region's huge pages (memkind.c) just */
	int64_t huge_after;      /* before the start and after the end; -1   */
	unsigned round;          /* 1..repeat                               */
	char path[4096];
	bool keep;               /* --out given: the file stays             */
	uint64_t file_bytes;     /* size of the committed snapshot file     */
	struct bench_restore_result rr;
};

/* options.c: fills *o; 1 for --help, 0, or -EINVAL after saying why. */
int bench_parse_args(int argc, char **argv, struct bench_opts *o);
void bench_usage(FILE *f);

/* run.c: one snapshot of the workload with `method`, verified. */
void bench_run_method(const struct bench_opts *o, wl *w, wl_oracle *oracle, int method, struct bench_result *res);

/* noise.c: a process writing random pages of its own `bytes` of memory;
 * its pid once it writes, or -errno.  noise_stop(0) does nothing. */
pid_t noise_start(uint64_t bytes, bool thp);
void noise_stop(pid_t pid);

/*
 * verify.c: checks the snapshot at `path` against the oracle; `paused`
 * holds the step counts the pause hook recorded, which the file's state
 * blob must repeat.  Advances the oracle to them.  True if every page
 * matches; else why in msg.
 */
bool bench_verify(const char *method, const char *path, wl *w, wl_oracle *oracle, const uint64_t *paused,
                  int corrupt, char *msg, size_t msg_len);

/* The same, page by page through the reader's index: the image a chain's
 * last file presents (verify.c). */
bool bench_verify_image(const char *method, const char *path, wl *w, wl_oracle *oracle, const uint64_t *paused,
                        char *msg, size_t msg_len);

/* report.c */
void bench_report_json(const struct bench_opts *o, const struct bench_result *res);
void bench_report_table(const struct bench_opts *o, const struct bench_result *rs, int n, double raw_wp_us);
void bench_report_probe(const struct bench_opts *o, const struct wp_probe_result *pr);
/* The first result of `method` that completed, or NULL. */
const struct bench_result *bench_find_ok(const struct bench_result *rs, int n, int method);

/* incremental.c, reset_loop.c: the chain benches, instead of the
 * method rounds; EXIT_OK, EXIT_FAIL or EXIT_USAGE. */
int bench_incremental(const struct bench_opts *o, wl *w, const struct wl_params *params);
int bench_reset_loop(const struct bench_opts *o, wl *w, const struct wl_params *params);

/* summary.c: after --repeat N, the median over the rounds of each ratio
 * taken within a round; rs holds repeat rounds of nmethods results. */
void bench_report_summary(const struct bench_opts *o, const struct bench_result *rs);

#endif
