/*
 * cli.h - the bgsnap command-line tool: one function per subcommand, each
 * with its own option parsing and --help.  Exit codes: 0 success, 1 a failed
 * check (or a failed operation), 2 bad usage.
 */
#ifndef BGSNAP_CLI_H
#define BGSNAP_CLI_H

#include <stdint.h>

#include "size.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_bench(int argc, char **argv);


#endif
