/* cmd_info.c - `bgsnap info FILE [--json]`: what a snapshot holds, from its
 * header, trailer and index (no pass over the page data; see verify). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bgsnap.h"
#include "cli/cli.h"
#include "cli/json.h"
#include "commands.h"

/* Version 3, or version 4 with a LINEAGE block (its id is never zero). */
static int has_lineage(const struct bgsnap_file_info *fi)
{
	static const uint8_t zero[sizeof(fi->id)];
	return fi->version == 3 || (fi->version == 4 && memcmp(fi->id, zero, sizeof(zero)));
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bgsnap info FILE|- [--json]\n\n"
	           "Describes a snapshot: format version, page size, the method that wrote it,\n"
	           "when (the pause instant), the pause time, regions (name, address, size,\n"
	           "pages, zero pages), state blobs, record counts, file size, and compression\n"
	           "(method, raw and stored bytes of the non-zero pages, their ratio).  Checks the\n"
	           "header, trailer and index; `bgsnap verify` checks every byte.  FILE may be '-'\n"
	           "(standard input) or a pipe: it is then read through once, as a stream (every\n"
	           "record checked on the way), since its counts and state blobs come at its end.\n"
	           "A version 3 file also shows its lineage: its id, its parent's id and file\n"
	           "checksum, its depth, and the files of its chain (the parents are found by\n"
	           "id among the files of FILE's directory).\n\n"
	           "  --json   print one JSON object\n");
}

/* What info prints beyond the reader's own descriptions. */
struct info {
	const char *file;
	struct bgsnap_file_info fi;
	const char *method;
	char method_buf[32];
	char created[64];
};

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

static void gather(bgsnap_reader *r, const char *file, struct info *in)
{
	in->file = file;
	bgsnap_reader_info(r, &in->fi, sizeof in->fi);
	in->method = bgsnap_method_name(in->fi.method);
	if (!in->method) {
		snprintf(in->method_buf, sizeof(in->method_buf), "unknown(%d)", in->fi.method);
		in->method = in->method_buf;
	}
	iso_time(in->fi.created_unix_ns, in->created, sizeof(in->created));
}

static const char *compress_name(int c)
{
	return c == BGSNAP_COMPRESS_ZSTD ? "zstd" : "none";
}

/* Stored over raw bytes of the non-zero pages (record headers included). */
static double ratio(const struct bgsnap_file_info *fi)
{
	return fi->raw_bytes ? (double)fi->stored_bytes / (double)fi->raw_bytes : 0.0;
}

static void hex_id(const uint8_t *id, char out[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* Version 3: where the file stands in its chain, and the chain's files. */
static void print_lineage_text(bgsnap_reader *r, const struct bgsnap_file_info *fi)
{
	char id[33], parent[33];
	hex_id(fi->id, id);
	hex_id(fi->parent_id, parent);
	if (fi->incremental)
		printf("lineage:   id %s, incremental, depth %u\n           parent %s (file crc 0x%08x)\n", id, fi->depth,
		       parent, fi->parent_file_crc);
	else
		printf("lineage:   id %s, full (depth 0)\n", id);
	unsigned n = bgsnap_reader_chain_len(r);
	if (n > 1) {
		printf("chain:     %u files, oldest first\n", n);
		for (unsigned k = 0; k < n; k++)
			printf("  %s\n", bgsnap_reader_path(bgsnap_reader_chain_link(r, k)));
	}
}

static void print_lineage_json(bgsnap_reader *r, const struct bgsnap_file_info *fi, struct json *j)
{
	char id[33], parent[33];
	hex_id(fi->id, id);
	hex_id(fi->parent_id, parent);
	json_string(j, "id", id);
	json_string(j, "parent_id", fi->incremental ? parent : "");
	json_u64(j, "parent_file_crc", fi->parent_file_crc);
	json_u64(j, "depth", fi->depth);
	json_bool(j, "incremental", fi->incremental);
	json_open_array(j, "chain");
	for (unsigned k = 0; k < bgsnap_reader_chain_len(r); k++) {
		const char *p = bgsnap_reader_path(bgsnap_reader_chain_link(r, k));
		json_string(j, NULL, p ? p : "-");
	}
	json_close_array(j);
}

static void print_text(bgsnap_reader *r, const struct info *in)
{
	const struct bgsnap_file_info *fi = &in->fi;
	printf("file:      %s\nsize:      %" PRIu64 " bytes\nformat:    v%u, page size %u\n"
	       "method:    %s\ncreated:   %s\npause:     %" PRIu64 " us\n"
	       "pages:     %" PRIu64 " (%" PRIu64 " zero)\n"
	       "records:   %" PRIu64 " (%" PRIu64 " PAGES, %" PRIu64 " CPAGES, %" PRIu64 " ZERO, %" PRIu64
	       " STATE), all in the index\n"
	       "compress:  %s, page data %" PRIu64 " bytes stored in %" PRIu64 " (ratio %.3f)\n"
	       "regions:   %u\n",
	       in->file, fi->file_bytes, fi->version, fi->page_size, in->method, in->created, fi->pause_us,
	       fi->pages_total, fi->pages_zero, fi->records, fi->page_records, fi->cpage_records, fi->zero_records,
	       fi->state_records, compress_name(fi->compress), fi->raw_bytes, fi->stored_bytes, ratio(fi),
	       fi->region_count);
	for (unsigned i = 0; i < fi->region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		printf("  %-20s addr 0x%012" PRIx64 "  size %" PRIu64 " (%" PRIu64 " pages, %" PRIu64 " zero)\n", ri.name,
		       ri.addr, ri.size, ri.size / fi->page_size, ri.pages_zero);
	}
	printf("state:     %u blobs\n", fi->state_count);
	for (unsigned i = 0; i < fi->state_count; i++) {
		const char *name;
		size_t len;
		if (bgsnap_reader_state(r, i, &name, NULL, &len) == 0)
			printf("  %-20s %zu bytes\n", name, len);
	}
	if (fi->page_aligned)
		printf("layout:    page-aligned (PAGES data at multiples of the page size; %" PRIu64 " PAD records)\n",
		       fi->pad_records);
	if (has_lineage(fi))
		print_lineage_text(r, fi);
}

static void print_json(bgsnap_reader *r, const struct info *in)
{
	const struct bgsnap_file_info *fi = &in->fi;
	struct json j;
	json_begin(&j, stdout);
	json_open(&j, NULL);
	json_string(&j, "file", in->file);
	json_u64(&j, "file_bytes", fi->file_bytes);
	json_u64(&j, "version", fi->version);
	json_u64(&j, "page_size", fi->page_size);
	json_string(&j, "method", in->method);
	json_u64(&j, "created_unix_ns", fi->created_unix_ns);
	json_string(&j, "created", in->created);
	json_u64(&j, "pause_us", fi->pause_us);
	json_u64(&j, "pages_total", fi->pages_total);
	json_u64(&j, "pages_zero", fi->pages_zero);
	json_u64(&j, "records", fi->records);
	json_u64(&j, "pages_records", fi->page_records);
	json_u64(&j, "zero_records", fi->zero_records);
	json_u64(&j, "cpages_records", fi->cpage_records);
	json_string(&j, "compress", compress_name(fi->compress));
	json_u64(&j, "raw_bytes", fi->raw_bytes);
	json_u64(&j, "stored_bytes", fi->stored_bytes);
	json_double(&j, "ratio", 4, ratio(fi));
	json_u64(&j, "index_entries", fi->records + fi->pad_records);
	json_bool(&j, "page_aligned", fi->page_aligned);
	json_u64(&j, "pad_records", fi->pad_records);
	if (has_lineage(fi))
		print_lineage_json(r, fi, &j);
	json_open_array(&j, "regions");
	for (unsigned i = 0; i < fi->region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		json_open(&j, NULL);
		json_string(&j, "name", ri.name);
		json_u64(&j, "addr", ri.addr);
		json_u64(&j, "size", ri.size);
		json_u64(&j, "pages", ri.size / fi->page_size);
		json_u64(&j, "pages_zero", ri.pages_zero);
		json_close(&j);
	}
	json_close_array(&j);
	json_open_array(&j, "states");
	for (unsigned i = 0; i < fi->state_count; i++) {
		const char *name;
		size_t len;
		if (bgsnap_reader_state(r, i, &name, NULL, &len) < 0)
			continue;
		json_open(&j, NULL);
		json_string(&j, "name", name);
		json_u64(&j, "size", len);
		json_close(&j);
	}
	json_close_array(&j);
	json_close(&j);
	json_end_line(&j);
}

/* A stream tells its counts, state blobs and size only at its end (the
 * index and trailer come last): it is read through, every record checked
 * on the way, before anything is printed. */
static int read_stream(bgsnap_reader *r, const char *file)
{
	struct bgsnap_record rec;
	int rc;
	while ((rc = bgsnap_reader_next(r, &rec)) > 0 && rec.kind != BGSNAP_REC_END)
		;
	if (rc < 0) {
		cli_error("%s: %s", file, bgsnap_reader_errmsg(r));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, CLI_OPT_HELP, CLI_OPT_END };
	int json = 0, c;
	while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
		if (c == 'j')
			json = 1;
		else
			return c == 'h' ? cli_help(usage) : cli_usage_error(usage, NULL);
	}
	if (argc - optind > 1)
		return cli_usage_error(usage, "one FILE only");
	if (argc - optind < 1)
		return cli_usage_error(usage, NULL);
	int fd;
	bgsnap_reader *r = cli_open_any(argv[optind], &fd);
	if (!r)
		return EXIT_FAIL;
	if (fd >= 0 || !strcmp(argv[optind], "-")) {
		int rc = read_stream(r, argv[optind]);
		if (rc != EXIT_OK) {
			bgsnap_reader_close(r);
			if (fd >= 0)
				close(fd);
			return rc;
		}
	}
	struct info in;
	gather(r, argv[optind], &in);
	if (json)
		print_json(r, &in);
	else
		print_text(r, &in);
	bgsnap_reader_close(r);
	if (fd >= 0)
		close(fd);
	return EXIT_OK;
}
