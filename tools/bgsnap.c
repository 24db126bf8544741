/* bgsnap.c - the bgsnap tool's entry point: dispatches to one function per
 * subcommand (see cli.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgsnap.h"
#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "bench",   cmd_bench,   "snapshot live memory with each method and verify it" },
	{ "info",    cmd_info,    "describe a snapshot file" },
	{ "verify",  cmd_verify,  "check a snapshot file end to end" },
	{ "extract", cmd_extract, "write one region of a snapshot as a raw image" },
	{ "diff",    cmd_diff,    "compare two snapshots page by page" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap COMMAND [OPTIONS]   (bgsnap COMMAND --help for details)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nbgsnap %s\n", bgsnap_version());
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("bgsnap %s\n", bgsnap_version());
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "bgsnap: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
