/*
 * commands.h - the bgsnap tool's subcommands, one function each (argv[0] is
 * the command's name), dispatched by bgsnap.c through the CLI floor
 * (cli/cli.h); each parses its own options and answers --help.
 */
#ifndef BGSNAP_TOOLS_COMMANDS_H
#define BGSNAP_TOOLS_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_bench(int argc, char **argv);      /* bench/cmd_bench.c */

#endif
