/*
 * progress.h - a progress line on stderr for commands that run long: the
 * percentage, MB/s, the time left and (for compressed data) the ratio,
 * redrawn in place with '\r' at most ten times a second.
 *
 * Shown when stderr is a terminal, or always with --progress; never with
 * --quiet.  When not shown, nothing is ever written.  Not thread-safe: one
 * thread updates a given line.
 */
#ifndef BGSNAP_TOOLS_PROGRESS_H
#define BGSNAP_TOOLS_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

enum progress_mode { PROGRESS_AUTO, PROGRESS_FORCE, PROGRESS_QUIET };

/* getopt values of --progress and --quiet, beyond any character option. */
enum { PROGRESS_OPT_FORCE = 0x200, PROGRESS_OPT_QUIET };
#define PROGRESS_OPTS { "progress", no_argument, NULL, PROGRESS_OPT_FORCE }, \
                      { "quiet", no_argument, NULL, PROGRESS_OPT_QUIET }
/* The two options' lines for a command's --help. */
#define PROGRESS_HELP "  --progress      show the progress line on stderr even when it is not a terminal\n" \
                      "  --quiet         never show the progress line\n"

/* True (with *mode set) when getopt's `c` is one of PROGRESS_OPTS. */
bool progress_option(int c, enum progress_mode *mode);
/* The whole command line of a command whose only options are PROGRESS_OPTS
 * and --help and that takes exactly `operands` operands (`what` says so in
 * the usage error): -1 to go on (optind at the first operand), else the
 * exit code the command returns (help printed, or a usage error). */
int progress_only_options(int argc, char **argv, enum progress_mode *mode, cli_usage_fn *usage, int operands,
                          const char *what);

struct progress {
	bool shown;
	const char *label;           /* "verify", ...; not copied              */
	uint64_t total;              /* bytes the work amounts to; 0: unknown  */
	uint64_t t0_ns, last_ns;     /* start, last redraw                     */
	double ratio;                /* stored / raw; 0: not shown             */
	int len;                     /* length of the line last drawn          */
};

/* Starts a line (not yet drawn) for `total` bytes of work. */
void progress_begin(struct progress *p, enum progress_mode mode, const char *label, uint64_t total);
/* Sets the compression ratio shown (stored / raw bytes), 0 for none. */
void progress_ratio(struct progress *p, double ratio);
/* `done` bytes of the total are done; redraws if the last redraw is at
 * least 100 ms old. */
void progress_update(struct progress *p, uint64_t done);
/* Clears the line (if one was drawn); the work is over. */
void progress_end(struct progress *p);

/*
 * A line for one library call that reports nothing while it runs but
 * reads its input once (verify, an eager restore): a thread redraws it
 * from what this process has read so far (/proc/self/io's rchar) against
 * `total`, never showing 100 % before the call is over.  No thread when
 * the line is not shown.
 */
struct progress_watch {
	struct progress bar;
	atomic_bool stop;
	uint64_t rchar0;
	pthread_t thread;
	bool running;
};
void progress_watch_begin(struct progress_watch *w, enum progress_mode mode, const char *label, uint64_t total);
/* Stops the thread and clears the line. */
void progress_watch_end(struct progress_watch *w);

#endif
