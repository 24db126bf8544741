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
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap verify FILE\n\n"
	           "Checks a snapshot end to end.  Exit 0 and \"FILE: OK, ...\" when it is intact;\n"
	           "exit 1 with what is wrong and at which offset otherwise.  FILE may be '-'\n"
	           "(standard input) or a pipe: it is then read once, as a stream.\n");
}

int cmd_verify(int argc, char **argv)
{
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "bgsnap verify: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!file) {
			file = argv[i];
		} else {
			fprintf(stderr, "bgsnap verify: one FILE only\n");
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!file) {
		usage(stderr);
		return EXIT_USAGE;
	}
	char err[600];
	bgsnap_reader *r = NULL;
	int fd = -1, rc;
	if (!strcmp(file, "-")) {
		rc = bgsnap_reader_open_stream(&r, STDIN_FILENO, err, sizeof(err));
	} else {
		rc = bgsnap_reader_open(&r, file, err, sizeof(err));
		if (rc == -ESPIPE) {   /* a pipe, a FIFO, /dev/stdin: read it as a stream */
			fd = open(file, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				fprintf(stderr, "bgsnap verify: %s: %s\n", file, strerror(errno));
				return EXIT_FAIL;
			}
			rc = bgsnap_reader_open_stream(&r, fd, err, sizeof(err));
		}
	}
	if (rc < 0) {
		fprintf(stderr, "bgsnap verify: %s: %s\n", file, err);
		if (fd >= 0)
			close(fd);
		return EXIT_FAIL;
	}
	rc = bgsnap_reader_verify(r);
	if (rc < 0) {
		fprintf(stderr, "bgsnap verify: %s: %s\n", file, bgsnap_reader_errmsg(r));
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
