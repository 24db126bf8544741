/*
 * cli.h - the command-line floor shared by bgsnap, bgsnap-vm and bgsnap-kv:
 * exit codes, the command table and its dispatch, getopt_long with one way
 * of saying what is wrong, numbers and sizes on the command line, messages,
 * and opening a snapshot for reading.
 *
 * Every command is a function `int run(int argc, char **argv)` whose argv[0]
 * is the command's name; it parses its options with cli_getopt (long options
 * as `--name`, `-h`/`--help` always) and returns one of the exit codes.
 */
#ifndef BGSNAP_TOOLS_CLI_H
#define BGSNAP_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bgsnap.h"

/* 0 success, 1 a failed check (or a failed operation), 2 bad usage. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;         /* one line for the program's --help      */
};

struct cli_program {
	const char *name;            /* "bgsnap"                               */
	const struct cli_command *commands;
	size_t ncommands;
	/* Messages start "NAME:" rather than "NAME COMMAND:" (bgsnap-vm, whose
	 * --stats report lines are read by scripts). */
	bool messages_without_command;
};

/*
 * The program's main: argv[1] names the command, which runs with argv + 1.
 * `NAME`, `NAME --help|-h|help` and `NAME --version` are answered here.
 */
int cli_main(const struct cli_program *prog, int argc, char **argv);

/* What messages start with while a command runs ("bgsnap info"). */
const char *cli_who(void);
/* "WHO: message\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Formats a message into err (when err_len > 0) and returns `code`: the
 * "-errno with a message" convention of the tools' own functions. */
int cli_fail(char *err, size_t err_len, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- options ---- */

#define CLI_OPT_HELP { "help", no_argument, NULL, 'h' }
#define CLI_OPT_END  { NULL, 0, NULL, 0 }

/*
 * getopt_long over a command's argv.  Returns the next option, -1 after the
 * last one (operands are then argv[optind..argc)), or '?' after saying on
 * stderr which option is unknown or lacks its value.  `shortopts` as for
 * getopt ("h" at least).
 */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* A command's usage text, written to the stream given. */
typedef void cli_usage_fn(FILE *f);

/* --help: the usage on stdout, EXIT_OK. */
int cli_help(cli_usage_fn *usage);
/* Bad usage: the message (if fmt is not NULL), then the usage, on stderr;
 * returns EXIT_USAGE. */
int cli_usage_error(cli_usage_fn *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A whole number in [lo, hi], decimal (base 10) or C-style (base 0: 0x..,
 * 0..).  True with *out set; false (nothing said) if `s` is not one: it
 * must start with a digit (no sign, no white space) and fit in 64 bits.
 */
bool cli_parse_u64(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out);
/*
 * An option's decimal value in [lo, hi]; false after saying on stderr
 * "--OPT: 'S' is not a number in LO..HI".
 */
bool cli_opt_number(const char *opt, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out);
/* "512M", "2G", "4K", "1GiB", "4096" (binary units); 0 or -EINVAL (not
 * starting with a digit, an unknown unit, more than 64 bits). */
int cli_parse_size(const char *s, uint64_t *out);
/* --compress's value: "none", "zstd", "zstd:LEVEL" (1..19, -1..-7),
 * "zstd:auto" or "zstd:auto:LEVEL" (BGSNAP_COMPRESS_ZSTD_AUTO) into *method
 * (enum bgsnap_compress) and *level (0: the library's default).  0, or
 * -EINVAL after saying why on stderr (prefixed with `opt`). */
int cli_parse_compress(const char *opt, const char *s, int *method, int *level);
/* The name --compress gives a method: "none", "zstd", "zstd:auto". */
const char *cli_compress_name(int method);

/* ---- snapshots ---- */

/* Opens `path` for random access; on failure says "WHO: PATH: why" and
 * returns NULL. */
bgsnap_reader *cli_open_snapshot(const char *path);

/* Opens `path` for random access, or as a stream (records in order only)
 * when it is '-' (standard input) or cannot seek (a pipe, a FIFO); then
 * *fd is the descriptor opened for the stream, to close after the reader
 * (-1 otherwise).  On failure says "WHO: PATH: why" and returns NULL. */
bgsnap_reader *cli_open_any(const char *path, int *fd);

#endif
