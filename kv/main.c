/*
 * main.c - bgsnap-kv's command line: options spelled as redis-server's where
 * they mean the same thing, and bgsnap's own (--method, --restore, --lazy).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "kv.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: bgsnap-kv [OPTIONS]\n"
	        "A Redis-protocol (RESP2) in-memory key-value server whose data lives in one\n"
	        "arena at a fixed address, saved by bgsnap background snapshots (BGSAVE).\n\n"
	        "  --port N              TCP port (default 6379)\n"
	        "  --bind ADDR           IPv4 address to listen on (default 127.0.0.1)\n"
	        "  --dir DIR             directory of the snapshot file (default .)\n"
	        "  --dbfilename NAME     snapshot file name (default dump.bgsnap)\n"
	        "  --maxmemory SIZE      the arena's size: all keys, values and the table\n"
	        "                        (100mb, 1gb, 512M...; default 256mb); writes beyond\n"
	        "                        it get -OOM\n"
	        "  --save SECONDS        BGSAVE every SECONDS when something changed (\"\" or 0:\n"
	        "                        never, the default); also save on SHUTDOWN/SIGTERM\n"
	        "  --method M            how BGSAVE tracks writes: auto, uffd, uffd-signal,\n"
	        "                        mprotect, fork, stop (default auto)\n"
	        "  --copy-buffer SIZE    bgsnap copy buffer (bounds the extra memory of a save)\n"
	        "  --thp yes|no          transparent huge pages for the arena (default yes:\n"
	        "                        BGSAVE stops the loop for far less time)\n"
	        "  --fault-around N      pages saved per write fault during BGSAVE (1..64,\n"
	        "                        a power of two; default 1)\n"
	        "  --save-nice N         nice value of BGSAVE's writer threads, 0..19 (default\n"
	        "                        0): a longer save, more CPU left for requests\n"
	        "  --pre-protect 0|1     write-protect before the pause (1) or in it (0, the\n"
	        "                        default: the event loop waits for both alike)\n"
	        "  --restore FILE        start from this snapshot (same --maxmemory, or none)\n"
	        "  --lazy                with --restore: serve at once, pages arrive meanwhile\n"
	        "  --proto-max-bulk-len SIZE   longest argument accepted (default 16mb)\n"
	        "  --client-output-limit SIZE  a client's unsent replies beyond this close it\n"
	        "                        (default 64mb)\n"
	        "  -h, --help            this text\n");
}

/* Redis's memory units (1k = 1000, 1kb = 1024, ...) and bgsnap's (512M). */
static int parse_mem(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || errno || s[0] == '-')
		return -1;
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = { { "", 1 }, { "b", 1 }, { "k", 1000 }, { "kb", 1024 }, { "m", 1000000 }, { "mb", 1 << 20 },
		      { "g", 1000000000 }, { "gb", 1 << 30 } };
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcasecmp(end, units[i].unit)) {
			if (v > UINT64_MAX / units[i].mul)
				return -1;
			*out = v * units[i].mul;
			return 0;
		}
	return cli_parse_size(s, out) == 0 ? 0 : -1;
}

static int bad(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "bgsnap-kv: %s '%s': %s\n", opt, arg, why);
	return EXIT_USAGE;
}

enum { O_PORT = 1, O_BIND, O_DIR, O_DBFILE, O_MAXMEM, O_SAVE, O_METHOD, O_COPYBUF, O_RESTORE, O_LAZY, O_BULK,
       O_OUTLIM, O_PREWP, O_THP, O_FAULTAROUND, O_SAVENICE };

/* One case per option, each a line or two: kept as one switch so that the
 * options read as a list. */
static int set_option(struct kv_config *c, int o, const char *arg, bool *maxmem_given)
{
	uint64_t v;
	switch (o) {
	case O_PORT:
		if (!cli_parse_u64(arg, 10, 0, 65535, &v))
			return bad("--port", arg, "not a port number");
		c->port = (int)v;
		return 0;
	case O_BIND:
		snprintf(c->bind, sizeof(c->bind), "%s", arg);
		return 0;
	case O_DIR:
		if (strlen(arg) >= sizeof(c->dir))
			return bad("--dir", arg, "too long");
		snprintf(c->dir, sizeof(c->dir), "%s", arg);
		return 0;
	case O_DBFILE:
		if (!arg[0] || strchr(arg, '/') || strlen(arg) >= sizeof(c->dbfilename))
			return bad("--dbfilename", arg, "must be a file name, without '/'");
		snprintf(c->dbfilename, sizeof(c->dbfilename), "%s", arg);
		return 0;
	case O_MAXMEM:
		if (parse_mem(arg, &v) < 0 || v < ARENA_MIN || v > ARENA_MAX)
			return bad("--maxmemory", arg, "not a size between 1mb and 1tb");
		c->maxmemory = (size_t)((v + 4095) & ~(uint64_t)4095);
		*maxmem_given = true;
		return 0;
	case O_SAVE:
		/* redis-server's "SECONDS CHANGES" is accepted; the count is not used. */
		{
			char *end;
			errno = 0;
			unsigned long long sec = arg[0] ? strtoull(arg, &end, 10) : 0;
			if (arg[0] && (end == arg || errno || (*end && *end != ' ') || sec > 100000000 || arg[0] == '-'))
				return bad("--save", arg, "not a number of seconds");
			c->save_seconds = (unsigned)sec;
		}
		return 0;
	case O_METHOD: {
		int m = bgsnap_method_parse(arg);
		if (m < 0)
			return bad("--method", arg, "not one of auto, uffd, uffd-signal, mprotect, fork, stop");
		c->method = m;
		return 0;
	}
	case O_COPYBUF:
		if (parse_mem(arg, &v) < 0 || v < 4096 || v > ARENA_MAX)
			return bad("--copy-buffer", arg, "not a size of at least 4k");
		c->copy_buffer = (size_t)v;
		return 0;
	case O_RESTORE:
		c->restore = arg;
		return 0;
	case O_LAZY:
		c->lazy = true;
		return 0;
	case O_BULK:
		if (parse_mem(arg, &v) < 0 || v < 1 || v > ((uint64_t)1 << 32) - 1)
			return bad("--proto-max-bulk-len", arg, "not a size between 1 and 4gb");
		c->limits.bulk_max = (size_t)v;
		return 0;
	case O_PREWP:
		if (!cli_parse_u64(arg, 10, 0, 1, &v))
			return bad("--pre-protect", arg, "not 0 or 1");
		c->pre_protect = (unsigned)v;
		return 0;
	case O_THP:
		if (strcmp(arg, "yes") && strcmp(arg, "no"))
			return bad("--thp", arg, "not yes or no");
		c->thp = !strcmp(arg, "yes");
		return 0;
	case O_FAULTAROUND:
		if (!cli_parse_u64(arg, 10, 1, 64, &v) || (v & (v - 1)))
			return bad("--fault-around", arg, "not a power of two in 1..64");
		c->fault_around = (unsigned)v;
		return 0;
	case O_SAVENICE:
		if (!cli_parse_u64(arg, 10, 0, 19, &v))
			return bad("--save-nice", arg, "not a nice value in 0..19");
		c->save_nice = (int)v;
		return 0;
	case O_OUTLIM:
		if (parse_mem(arg, &v) < 0 || v < 4096)
			return bad("--client-output-limit", arg, "not a size of at least 4k");
		c->output_max = (size_t)v;
		return 0;
	}
	return EXIT_USAGE;
}

static void defaults(struct kv_config *c)
{
	memset(c, 0, sizeof(*c));
	c->port = 6379;
	snprintf(c->bind, sizeof(c->bind), "127.0.0.1");
	snprintf(c->dir, sizeof(c->dir), ".");
	snprintf(c->dbfilename, sizeof(c->dbfilename), "dump.bgsnap");
	c->maxmemory = (size_t)256 << 20;
	c->method = BGSNAP_METHOD_AUTO;
	c->thp = true;
	c->limits.bulk_max = (size_t)16 << 20;
	c->limits.args_max = 1024 * 1024;
	c->limits.inline_max = 64 * 1024;
	c->output_max = (size_t)64 << 20;
	c->output_soft = (size_t)1 << 20;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, O_PORT },       { "bind", required_argument, NULL, O_BIND },
		{ "dir", required_argument, NULL, O_DIR },         { "dbfilename", required_argument, NULL, O_DBFILE },
		{ "maxmemory", required_argument, NULL, O_MAXMEM }, { "save", required_argument, NULL, O_SAVE },
		{ "method", required_argument, NULL, O_METHOD },   { "copy-buffer", required_argument, NULL, O_COPYBUF },
		{ "restore", required_argument, NULL, O_RESTORE }, { "lazy", no_argument, NULL, O_LAZY },
		{ "proto-max-bulk-len", required_argument, NULL, O_BULK },
		{ "client-output-limit", required_argument, NULL, O_OUTLIM },
		{ "pre-protect", required_argument, NULL, O_PREWP },
		{ "thp", required_argument, NULL, O_THP },
		{ "save-nice", required_argument, NULL, O_SAVENICE },
		{ "fault-around", required_argument, NULL, O_FAULTAROUND },
		{ "help", no_argument, NULL, 'h' },                { NULL, 0, NULL, 0 },
	};
	static struct server s;
	defaults(&s.cfg);
	bool maxmem_given = false;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h') {
			usage(stdout);
			return EXIT_OK;
		}
		if (o == '?') {
			fprintf(stderr, "bgsnap-kv: unknown option or missing value: %s\n", argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
		int rc = set_option(&s.cfg, o, optarg, &maxmem_given);
		if (rc)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "bgsnap-kv: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (s.cfg.lazy && !s.cfg.restore) {
		fprintf(stderr, "bgsnap-kv: --lazy needs --restore FILE\n");
		return EXIT_USAGE;
	}
	s.cfg.query_max = s.cfg.limits.bulk_max + ((size_t)64 << 20);
	s.start_unix = (uint64_t)time(NULL);
	if (persist_init(&s) < 0 || persist_open_arena(&s, maxmem_given) < 0)
		return EXIT_FAIL;
	int rc = server_run(&s);
	persist_close(&s);
	return rc;
}
