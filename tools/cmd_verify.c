/* cmd_verify.c - `bgsnap verify FILE|-`: the full check of a snapshot (every
 * record's checksum, the whole-file checksum, every page exactly once, the
 * index against the records).  A pipe or '-' (stdin) is checked as a stream. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bgsnap.h"
#include "cli/cli.h"
#include "commands.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap verify FILE|-\n\n"
	           "Checks a snapshot end to end.  Exit 0 and \"FILE: OK, ...\" when it is intact;\n"
	           "exit 1 with what is wrong and at which offset otherwise.  FILE may be '-'\n"
	           "(standard input) or a pipe: it is then read once, as a stream.\n");
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = { CLI_OPT_HELP, CLI_OPT_END };
	int c;
	if ((c = cli_getopt(argc, argv, "h", opts)) != -1)
		return c == 'h' ? cli_help(usage) : cli_usage_error(usage, NULL);
	if (argc - optind > 1)
		return cli_usage_error(usage, "one FILE only");
	if (argc - optind < 1)
		return cli_usage_error(usage, NULL);
	const char *file = argv[optind];
	int fd;
	bgsnap_reader *r = cli_open_any(file, &fd);
	if (!r)
		return EXIT_FAIL;
	int rc = bgsnap_reader_verify(r);
	if (rc < 0) {
		cli_error("%s: %s", file, bgsnap_reader_errmsg(r));
	} else {
		struct bgsnap_file_info fi;
		bgsnap_reader_info(r, &fi, sizeof fi);
		printf("%s: OK, %" PRIu64 " pages in %u regions (%" PRIu64 " zero), %u state blobs, %" PRIu64
		       " bytes\n", file, fi.pages_total, fi.region_count, fi.pages_zero, fi.state_count, fi.file_bytes);
	}
	bgsnap_reader_close(r);
	if (fd >= 0)
		close(fd);
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}
