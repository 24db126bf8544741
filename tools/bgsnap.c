/* bgsnap.c - the bgsnap tool's entry point: its command table. */
#include "cli/cli.h"
#include "commands.h"

static const struct cli_command commands[] = {
	{ "bench",   cmd_bench,   "snapshot live memory with each method and verify it" },
	{ "info",    cmd_info,    "describe a snapshot file" },
	{ "verify",  cmd_verify,  "check a snapshot file end to end" },
	{ "extract", cmd_extract, "write one region of a snapshot as a raw image" },
	{ "diff",    cmd_diff,    "compare two snapshots page by page" },
	{ "merge",   cmd_merge,   "flatten a chain of snapshots into one full snapshot" },
};

int main(int argc, char **argv)
{
	static const struct cli_program bgsnap = {
		.name = "bgsnap", .commands = commands, .ncommands = sizeof(commands) / sizeof(commands[0]),
	};
	return cli_main(&bgsnap, argc, argv);
}
