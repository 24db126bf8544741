/* cmd_info.c - `bgsnap info FILE [--json]`: what a snapshot holds, from its
 * header, trailer and index (no pass over the page data; see verify). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bgsnap.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap info FILE [--json]\n\n"
	           "Describes a snapshot: format version, page size, the method that wrote it,\n"
	           "when (the pause instant), the pause time, regions (name, address, size,\n"
	           "pages, zero pages), state blobs, record counts and file size.  Checks the\n"
	           "header, trailer and index; `bgsnap verify` checks every byte.\n\n"
	           "  --json   print one JSON object\n");
}

/* Names are printable ASCII (the reader checks); file names may be anything. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void iso_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%09" PRIu64 "Z", ns % 1000000000u);
}

int cmd_info(int argc, char **argv)
{
	const char *file = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "bgsnap info: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else if (!file) {
			file = argv[i];
		} else {
			fprintf(stderr, "bgsnap info: one FILE only\n");
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (!file) {
		usage(stderr);
		return EXIT_USAGE;
	}
	char err[600];
	bgsnap_reader *r;
	if (bgsnap_reader_open(&r, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "bgsnap info: %s: %s\n", file, err);
		return EXIT_FAIL;
	}
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	const char *method = bgsnap_method_name(fi.method);
	char mbuf[32], when[64];
	if (!method) {
		snprintf(mbuf, sizeof(mbuf), "unknown(%d)", fi.method);
		method = mbuf;
	}
	iso_time(fi.created_unix_ns, when, sizeof(when));
	if (json) {
		printf("{\"file\":");
		json_str(file);
		printf(",\"file_bytes\":%" PRIu64 ",\"version\":%u,\"page_size\":%u,\"method\":\"%s\","
		       "\"created_unix_ns\":%" PRIu64 ",\"created\":\"%s\",\"pause_us\":%" PRIu64
		       ",\"pages_total\":%" PRIu64 ",\"pages_zero\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"pages_records\":%" PRIu64 ",\"zero_records\":%" PRIu64 ",\"index_entries\":%" PRIu64
		       ",\"regions\":[",
		       fi.file_bytes, fi.version, fi.page_size, method, fi.created_unix_ns, when, fi.pause_us,
		       fi.pages_total, fi.pages_zero, fi.records, fi.page_records, fi.zero_records, fi.records);
	} else {
		printf("file:      %s\nsize:      %" PRIu64 " bytes\nformat:    v%u, page size %u\n"
		       "method:    %s\ncreated:   %s\npause:     %" PRIu64 " us\n"
		       "pages:     %" PRIu64 " (%" PRIu64 " zero)\n"
		       "records:   %" PRIu64 " (%" PRIu64 " PAGES, %" PRIu64 " ZERO, %" PRIu64 " STATE), all in the index\n"
		       "regions:   %u\n",
		       file, fi.file_bytes, fi.version, fi.page_size, method, when, fi.pause_us, fi.pages_total,
		       fi.pages_zero, fi.records, fi.page_records, fi.zero_records, fi.state_records, fi.region_count);
	}
	for (unsigned i = 0; i < fi.region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(ri.name);
			printf(",\"addr\":%" PRIu64 ",\"size\":%" PRIu64 ",\"pages\":%" PRIu64 ",\"pages_zero\":%" PRIu64 "}",
			       ri.addr, ri.size, ri.size / fi.page_size, ri.pages_zero);
		} else {
			printf("  %-20s addr 0x%012" PRIx64 "  size %" PRIu64 " (%" PRIu64 " pages, %" PRIu64 " zero)\n",
			       ri.name, ri.addr, ri.size, ri.size / fi.page_size, ri.pages_zero);
		}
	}
	if (json)
		printf("],\"states\":[");
	else
		printf("state:     %u blobs\n", fi.state_count);
	for (unsigned i = 0; i < fi.state_count; i++) {
		const char *name;
		size_t len;
		if (bgsnap_reader_state(r, i, &name, NULL, &len) < 0)
			continue;
		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(name);
			printf(",\"size\":%zu}", len);
		} else {
			printf("  %-20s %zu bytes\n", name, len);
		}
	}
	if (json)
		printf("]}\n");
	bgsnap_reader_close(r);
	return EXIT_OK;
}
