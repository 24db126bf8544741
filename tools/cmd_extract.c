/* cmd_extract.c - `bgsnap extract FILE --region NAME -o OUT`: one region as a
 * sparse raw image; with --elf, every region as an ELF core (elf_core.c).
 * Both are written as image.h says: zero pages stay holes, OUT is built in
 * a temporary of mode 0600 (it holds someone's memory) and renamed into
 * place when complete; OUT is never FILE itself. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bgsnap.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "elf_core.h"
#include "image.h"
#include "commands.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap extract FILE --region NAME -o OUT [--force] [--progress|--quiet]\n"
	           "       bgsnap extract FILE --elf -o CORE [--force] [--progress|--quiet]\n\n"
	           "Writes region NAME of snapshot FILE to OUT as a raw image of the region's\n"
	           "size (sparse: zero pages are holes).  OUT is written under a temporary name\n"
	           "with mode 0600 and renamed into place (replacing an existing OUT) only when\n"
	           "complete; OUT may not be FILE itself.  Every page read is checked against\n"
	           "its record's checksum.\n\n"
	           "  --region NAME   the region (see `bgsnap info FILE`)\n"
	           "  --elf           instead: every region as an ELF64 core file, one PT_LOAD\n"
	           "                  per region at its original address, the state blobs and\n"
	           "                  region names as BGSNAP notes (sparse; `gdb -c CORE`)\n"
	           "  -o, --output OUT  the image file\n"
	           "  --force         write OUT even if its size exceeds the free space of its\n"
	           "                  file system (refused otherwise: zero pages take no space,\n"
	           "                  but a crafted FILE can describe terabytes)\n"
	           PROGRESS_HELP
	           "\nA progress line is shown on stderr while it runs, if stderr is a terminal.\n");
}

static int extract_elf(bgsnap_reader *r, const char *file, const struct image_target *t)
{
	char err[600];
	struct elf_core_stats st;
	if (elf_core_write(r, t, &st, err, sizeof(err)) < 0) {
		cli_error("%s: %s", file, err);
		return EXIT_FAIL;
	}
	printf("%s: ELF core, %" PRIu64 " bytes (%" PRIu64 " pages written, %" PRIu64 " zero pages as holes)\n", t->path,
	       st.file_bytes, st.pages.data_pages, st.pages.zero_pages);
	return EXIT_OK;
}

/* The regions' names, for a region that is not there. */
static void no_region(bgsnap_reader *r, const char *file, const char *region)
{
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	fprintf(stderr, "%s: %s: no region named '%s'; regions:", cli_who(), file, region);
	for (unsigned i = 0; i < fi.region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		fprintf(stderr, "%s '%s'", i ? "," : "", ri.name);
	}
	fprintf(stderr, "\n");
}

static int extract_region(bgsnap_reader *r, const char *file, const char *region, const struct image_target *t)
{
	int idx = bgsnap_reader_find_region(r, region);
	if (idx < 0) {
		no_region(r, file, region);
		return EXIT_FAIL;
	}
	struct bgsnap_file_info fi;
	struct bgsnap_region_info ri;
	bgsnap_reader_info(r, &fi, sizeof fi);
	bgsnap_reader_region(r, (unsigned)idx, &ri, sizeof ri);
	char err[600];
	struct image_stats st = { .bar = t->bar };
	uint64_t pages = ri.size / fi.page_size;
	t->bar->total = ri.size;
	struct image_out o;
	int rc = image_create(&o, t, ri.size, err, sizeof(err));
	if (rc == 0) {
		rc = image_write_region(r, (unsigned)idx, pages, fi.page_size, o.fd, 0, &st, t->path, err, sizeof(err));
		rc = image_finish(&o, rc, err, sizeof(err));
	}
	if (rc < 0) {
		cli_error("%s: %s", file, err);
		return EXIT_FAIL;
	}
	printf("%s: region '%s', %" PRIu64 " bytes (%" PRIu64 " of %" PRIu64 " pages non-zero)\n", t->path, ri.name,
	       ri.size, st.data_pages, pages);
	return EXIT_OK;
}

int cmd_extract(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "region", required_argument, NULL, 'r' },
		{ "elf", no_argument, NULL, 'e' },
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		PROGRESS_OPTS, CLI_OPT_HELP, CLI_OPT_END,
	};
	enum progress_mode mode = PROGRESS_AUTO;
	const char *region = NULL;
	struct image_target t = { 0 };
	int elf = 0, c;
	while ((c = cli_getopt(argc, argv, "ho:", opts)) != -1) {
		switch (c) {
		case 'r': region = optarg; break;
		case 'e': elf = 1; break;
		case 'o': t.path = optarg; break;
		case 'f': t.force = true; break;
		case 'h': return cli_help(usage);
		default:
			if (progress_option(c, &mode))
				break;
			return cli_usage_error(usage, NULL);
		}
	}
	if (argc - optind > 1)
		return cli_usage_error(usage, "one FILE only");
	if (argc - optind < 1 || !t.path || (!region) == !elf)
		return cli_usage_error(usage, "FILE, -o and one of --region or --elf are required");
	const char *file = argv[optind];
	t.input = file;
	bgsnap_reader *r = cli_open_snapshot(file);
	if (!r)
		return EXIT_FAIL;
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	struct progress bar;
	/* Against every page for --elf; one region's is not known yet. */
	progress_begin(&bar, mode, "extract", elf ? fi.pages_total * fi.page_size : 0);
	t.bar = &bar;
	int rc = elf ? extract_elf(r, file, &t) : extract_region(r, file, region, &t);
	progress_end(&bar);
	bgsnap_reader_close(r);
	return rc;
}
