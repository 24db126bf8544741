/* cmd_merge.c - `bgsnap merge LAST -o FULL [--compress zstd]`: a chain of
 * snapshots (LAST and its parents, found by id in LAST's directory)
 * flattened into one full snapshot equal to the chain's image.  FULL is
 * written as extract writes its images (image.h): a temporary of mode 0600
 * in FULL's directory, fsynced and renamed into place only when complete;
 * FULL may be no file of the chain. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bgsnap.h"
#include "cli/cli.h"
#include "image.h"
#include "commands.h"

#define MAX_PARENTS 1024

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap merge LAST -o FULL [--compress none|zstd] [--parent FILE]...\n\n"
	           "Writes the image of the chain that ends with LAST (an incremental snapshot\n"
	           "and its parents, found by id among the files of LAST's directory, each\n"
	           "checked) as one full snapshot FULL: format version 1, or 2 when compressed.\n"
	           "Every page is checked against its record's checksum on the way.  FULL is\n"
	           "written under a temporary name with mode 0600 and renamed into place\n"
	           "(replacing an existing FULL) only when complete; it may be no file of the\n"
	           "chain.  LAST may also be a full snapshot (a chain of one).\n\n"
	           "  -o, --output FULL   the merged snapshot\n"
	           "  --compress M        none (default) or zstd\n"
	           "  --parent FILE       LAST's parents given, oldest (the full snapshot) first,\n"
	           "                      one option each, instead of searched for by id\n");
}

/* FULL must not replace a file of the chain (it would cut the chain). */
static int output_in_chain(bgsnap_reader *r, const char *out)
{
	struct stat so, sl;
	if (stat(out, &so) < 0)
		return 0;
	for (unsigned k = 0; k < bgsnap_reader_chain_len(r); k++) {
		const char *p = bgsnap_reader_path(bgsnap_reader_chain_link(r, k));
		if (p && stat(p, &sl) == 0 && sl.st_dev == so.st_dev && sl.st_ino == so.st_ino) {
			cli_error("%s is %s, a file of the chain: choose another output", out, p);
			return 1;
		}
	}
	return 0;
}

int cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "compress", required_argument, NULL, 'c' },
		{ "parent", required_argument, NULL, 'p' },
		CLI_OPT_HELP, CLI_OPT_END,
	};
	struct image_target t = { 0 };
	const char *paths[MAX_PARENTS + 1];
	unsigned np = 0;
	int compress = BGSNAP_COMPRESS_NONE, c;
	while ((c = cli_getopt(argc, argv, "ho:", opts)) != -1) {
		switch (c) {
		case 'o': t.path = optarg; break;
		case 'c':
			if (!strcmp(optarg, "zstd"))
				compress = BGSNAP_COMPRESS_ZSTD;
			else if (strcmp(optarg, "none"))
				return cli_usage_error(usage, "--compress takes none or zstd");
			break;
		case 'p':
			if (np == MAX_PARENTS)
				return cli_usage_error(usage, "too many --parent files");
			paths[np++] = optarg;
			break;
		case 'h': return cli_help(usage);
		default: return cli_usage_error(usage, NULL);
		}
	}
	if (argc - optind != 1 || !t.path)
		return cli_usage_error(usage, "LAST and -o FULL are required");
	const char *file = argv[optind];
	t.input = file;
	if (compress == BGSNAP_COMPRESS_ZSTD && !bgsnap_compress_available(compress)) {
		cli_error("--compress zstd: this build of bgsnap has no zstd");
		return EXIT_FAIL;
	}
	bgsnap_reader *r = NULL;
	if (np) {
		char err[600];
		paths[np] = file;
		if (bgsnap_reader_open_chain(&r, paths, np + 1, err, sizeof(err)) < 0) {
			cli_error("%s: %s", file, err);
			return EXIT_FAIL;
		}
	} else if (!(r = cli_open_snapshot(file))) {
		return EXIT_FAIL;
	}
	if (output_in_chain(r, t.path)) {
		bgsnap_reader_close(r);
		return EXIT_FAIL;
	}
	char err[600];
	struct image_out o;
	int rc = image_create(&o, &t, 0, err, sizeof(err));
	if (rc == 0) {
		rc = bgsnap_reader_write_full(r, o.fd, compress, err, sizeof(err));
		rc = image_finish(&o, rc, err, sizeof(err));
	}
	if (rc < 0) {
		cli_error("%s: %s", file, err);
	} else {
		struct bgsnap_file_info fi;
		bgsnap_reader_info(r, &fi, sizeof fi);
		printf("%s: %u files merged, %" PRIu64 " pages in %u regions, %u state blobs\n", t.path,
		       bgsnap_reader_chain_len(r), fi.pages_total, fi.region_count, fi.state_count);
	}
	bgsnap_reader_close(r);
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}
