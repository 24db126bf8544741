/* cmd_verify.c - `bgsnap verify FILE|-`: the full check of a snapshot (every
 * record's checksum, the whole-file checksum, every page exactly once, the
 * index against the records).  A pipe or '-' (stdin) is checked as a stream. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bgsnap.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "commands.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap verify [--progress|--quiet] FILE|-\n\n"
	           "Checks a snapshot end to end.  Exit 0 and \"FILE: OK, ...\" when it is intact;\n"
	           "exit 1 with what is wrong and at which offset otherwise.  FILE may be '-'\n"
	           "(standard input) or a pipe: it is then read once, as a stream.\n"
	           "An incremental snapshot is checked with its whole chain: each parent, found\n"
	           "by id among the files of FILE's directory, must be there and fit (id,\n"
	           "checksum, depth, regions), and each is verified in full; a failure names\n"
	           "the file.\n\n"
	           "A progress line is shown on stderr while it runs, if stderr is a terminal.\n"
	           PROGRESS_HELP);
}

/* The size to show progress against: 0 (unknown) for a pipe. */
static uint64_t input_size(const char *file, int fd)
{
	struct stat st;
	int rc = fd >= 0 ? fstat(fd, &st) : stat(file, &st);
	return rc == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* The check is one library call that reports nothing while it runs, but
 * it reads every byte of the file: the line follows the reads. */
static int verify_watched(bgsnap_reader *r, const char *file, int fd, enum progress_mode mode)
{
	struct progress_watch w;
	progress_watch_begin(&w, mode, "verify", input_size(file, fd));
	int rc = bgsnap_reader_verify(r);
	progress_watch_end(&w);
	return rc;
}

/* Every link of r's chain but the last (r itself), oldest first: each
 * failure named by its file.  0 or the first failure. */
static int verify_parents(bgsnap_reader *r, enum progress_mode mode)
{
	int first = 0;
	for (unsigned k = 0; k + 1 < bgsnap_reader_chain_len(r); k++) {
		bgsnap_reader *l = bgsnap_reader_chain_link(r, k);
		const char *p = bgsnap_reader_path(l);
		int rc = verify_watched(l, p, -1, mode);
		if (rc < 0) {
			cli_error("%s: %s", p, bgsnap_reader_errmsg(l));
			if (!first)
				first = rc;
		}
	}
	return first;
}

int cmd_verify(int argc, char **argv)
{
	enum progress_mode mode;
	int rc = progress_only_options(argc, argv, &mode, usage, 1, "one FILE (or -) is required");
	if (rc >= 0)
		return rc;
	const char *file = argv[optind];
	int fd;
	bgsnap_reader *r = cli_open_any(file, &fd);
	if (!r)
		return EXIT_FAIL;
	int prc = verify_parents(r, mode);
	rc = verify_watched(r, file, fd, mode);
	if (rc < 0)
		cli_error("%s: %s", file, bgsnap_reader_errmsg(r));
	if (rc == 0 && prc == 0) {
		struct bgsnap_file_info fi;
		bgsnap_reader_info(r, &fi, sizeof fi);
		printf("%s: OK, %" PRIu64 " pages in %u regions (%" PRIu64 " zero), %u state blobs, %" PRIu64
		       " bytes", file, fi.pages_total, fi.region_count, fi.pages_zero, fi.state_count, fi.file_bytes);
		unsigned n = bgsnap_reader_chain_len(r);
		if (n > 1)
			printf("; chain of %u files, each verified", n);
		printf("\n");
	}
	bgsnap_reader_close(r);
	if (fd >= 0)
		close(fd);
	return rc < 0 || prc < 0 ? EXIT_FAIL : EXIT_OK;
}
