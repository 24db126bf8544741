/*
 * main.c - bgsnap-vm: runs a guest on the reference VM and snapshots it
 * live with bgsnap (`run`), continues a snapshotted guest (`restore`), and
 * lists the built-in guests (`guests`).  The command table, the exit codes
 * and option parsing are the tools' CLI floor (tools/cli/); a run is
 * runner.h's.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "runner.h"

#define DEFAULT_RAM (128u << 20)

static void usage_options(FILE *f)
{
	fprintf(f, "  --method M             snapshot method: auto uffd uffd-signal mprotect fork stop\n"
	           "  --snapshot-at MS:DEST  snapshot into DEST MS ms after the guest (re)started (repeatable);\n"
	           "                         DEST: file:PATH (or PATH), exec:COMMAND (into its stdin),\n"
	           "                         unix:SOCKET (connect), fd:N (an inherited descriptor)\n"
	           "  --snapshot-every MS:DIR\n"
	           "                         a chain of snapshots into DIR (made if missing), one every\n"
	           "                         MS ms after the guest (re)started: DIR/snap-0001.bgsnap full,\n"
	           "                         the next ones incremental (method auto: mprotect; or stop);\n"
	           "                         restore the last file\n"
	           "  --compress C           none | zstd | zstd:LEVEL | zstd:auto[:LEVEL]: page data of every\n"
	           "                         snapshot in zstd chunks (default none); auto: only while the\n"
	           "                         destination is slower than the compressors\n"
	           "  --page-aligned         snapshots in the page-aligned layout (format version 4), which\n"
	           "                         `restore --map` maps instead of copying\n"
	           "  --max-rate SIZE        limit every snapshot's writer to SIZE bytes per second\n"
	           "                         (K/M/G: binary units; 0, the default: none; stop ignores it)\n"
	           "  --control SOCKET       UNIX socket for JSON commands (snapshot, query-snapshot,\n"
	           "                         query-status, stop, cont, quit)\n"
	           "  --control-mode MODE    the socket's permissions, octal (default 0600: its owner)\n"
	           "  --stats                print guest speed and snapshot figures on stderr\n"
	           "  --progress             a progress line on stderr while a snapshot or restore runs,\n"
	           "                         even when stderr is not a terminal (by default: only then)\n"
	           "  --quiet                no progress line\n"
	           "  --no-thp               back guest RAM with 4 KiB pages only (default: MADV_HUGEPAGE)\n"
	           "  -h, --help             this help\n");
}

static void run_usage(FILE *f)
{
	fprintf(f, "usage: bgsnap-vm run GUEST [options]\n"
	           "Runs GUEST (a name from `bgsnap-vm guests`, or a flat x86-64 binary) with its\n"
	           "console on stdout.\n"
	           "options:\n"
	           "  --mem SIZE             guest RAM (default 128M; 2M..2G)\n"
	           "  --rounds N             guest work rounds (0: the guest's default)\n");
	usage_options(f);
}

static void restore_usage(FILE *f)
{
	fprintf(f, "usage: bgsnap-vm restore SNAPSHOT [--lazy] [options]\n"
	           "Builds a fresh VM from SNAPSHOT (RAM, registers, console) and continues the guest;\n"
	           "its console output is the rest of the original run's output.\n"
	           "SNAPSHOT may be '-' (standard input) or a pipe: the stream is restored eagerly\n"
	           "as it arrives, straight into guest RAM (no file in between), and the guest\n"
	           "starts only once the whole stream arrived intact (index, trailer and every\n"
	           "checksum); a cut or corrupt stream fails with what is wrong and at which\n"
	           "offset, and nothing runs.  E.g. bgsnap-vm run ... --snapshot-at\n"
	           "'100:exec:bgsnap-vm restore - > rest.txt' continues a copy of the guest.\n"
	           "options:\n"
	           "  --lazy                 run at once, guest RAM filled on demand (userfaultfd);\n"
	           "                         a file only\n"
	           "  --map                  guest RAM mapped from a page-aligned snapshot (copy-on-write,\n"
	           "                         bgsnap_restore_map; other snapshots are restored by copy).\n"
	           "                         The file must stay unchanged while the guest runs; RAM\n"
	           "                         mapped from a file cannot be snapshotted again, so --map\n"
	           "                         does not go with --snapshot-at, --snapshot-every, --control\n");
	usage_options(f);
}

/* What the command line of run and restore asks for. */
struct run_args {
	bool restore;
	uint64_t mem, rounds;
	bool mem_set, rounds_set, lazy, thp;
	const char *operand;         /* GUEST or SNAPSHOT */
};

/* MS:REST of option `name`: the MS, and REST (non-empty, inside arg). */
static bool parse_ms(const char *name, const char *arg, const char *what, uint64_t *ms, const char **rest)
{
	const char *colon = strchr(arg, ':');
	char ms_text[32];
	if (!colon || colon == arg || !colon[1] || (size_t)(colon - arg) >= sizeof(ms_text)) {
		cli_error("%s: %s expected: %s", name, what, arg);
		return false;
	}
	snprintf(ms_text, sizeof(ms_text), "%.*s", (int)(colon - arg), arg);
	if (!cli_parse_u64(ms_text, 10, 0, UINT64_MAX - 1, ms)) {
		cli_error("%s: %s expected: %s", name, what, arg);
		return false;
	}
	*rest = colon + 1;
	return true;
}

/* --snapshot-at MS:DEST, added to the runner's schedule. */
static int snapshot_at(struct runner *r, const char *arg)
{
	uint64_t ms;
	const char *spec;
	if (!parse_ms("--snapshot-at", arg, "MS:DEST", &ms, &spec))
		return EXIT_USAGE;
	char err[320];
	struct dest d;
	if (dest_parse(spec, &d, err, sizeof(err)) < 0) {
		cli_error("--snapshot-at: %s", err);
		return EXIT_USAGE;
	}
	if (!snap_add(r, spec, -1, ms)) {
		if (errno != ENOSPC) {
			cli_error("out of memory");
			return EXIT_FAIL;
		}
		cli_error("--snapshot-at: at most %d snapshots", MAX_SNAPSHOTS);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* --snapshot-every MS:DIR: the chain's period and directory. */
static int snapshot_every(struct runner *r, const char *arg)
{
	if (!parse_ms("--snapshot-every", arg, "MS:DIR", &r->every_ms, &r->every_dir))
		return EXIT_USAGE;
	if (!r->every_ms) {
		cli_error("--snapshot-every: a period of at least 1 ms expected: %s", arg);
		return EXIT_USAGE;
	}
	r->every_next_ms = r->every_ms;
	return EXIT_OK;
}

/* The chain's method (auto: mprotect, the one that takes incremental
 * snapshots with the asynchronous tracker; every method can chain) and
 * its directory, made if missing. */
static int chain_setup(struct runner *r)
{
	if (!r->every_ms)
		return EXIT_OK;
	if (r->method == BGSNAP_METHOD_AUTO)
		r->method = BGSNAP_METHOD_MPROTECT;
	/* The library chains with every method, but a VM run chaining with
	 * fork or uffd hung in two of four CI runs (t_vm_chain_every, not
	 * reproduced alone): refused here until that is understood. */
	if (r->method != BGSNAP_METHOD_MPROTECT && r->method != BGSNAP_METHOD_STOP) {
		cli_error("--snapshot-every: method %s cannot take a chain of snapshots in bgsnap-vm yet (mprotect or stop can)",
		          bgsnap_method_name(r->method));
		return EXIT_USAGE;
	}
	if (r->nsnaps) {
		cli_error("--snapshot-every does not go with --snapshot-at");
		return EXIT_USAGE;
	}
	struct stat st;
	if (mkdir(r->every_dir, 0700) < 0 && errno != EEXIST) {
		cli_error("--snapshot-every: cannot create %s: %s", r->every_dir, strerror(errno));
		return EXIT_FAIL;
	}
	if (stat(r->every_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		cli_error("--snapshot-every: %s is not a directory", r->every_dir);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* One option of run or restore; EXIT_OK, or the exit code to give now
 * (-1: --help was answered). */
static int run_option(struct runner *r, struct run_args *a, int c, const char *arg)
{
	switch (c) {
	case 'm':
		if (cli_parse_size(arg, &a->mem) < 0 || a->mem < VM_MIN_RAM || a->mem > VM_MAX_RAM || a->mem % 4096) {
			cli_error("--mem: a size between 2M and 2G, a multiple of 4K, expected: %s", arg);
			return EXIT_USAGE;
		}
		a->mem_set = true;
		return EXIT_OK;
	case 'r':
		if (!cli_parse_u64(arg, 10, 0, UINT64_MAX, &a->rounds)) {
			cli_error("--rounds: a number expected: %s", arg);
			return EXIT_USAGE;
		}
		a->rounds_set = true;
		return EXIT_OK;
	case 'M':
		if ((r->method = bgsnap_method_parse(arg)) >= 0)
			return EXIT_OK;
		cli_error("--method: unknown method %s", arg);
		return EXIT_USAGE;
	case 's': return snapshot_at(r, arg);
	case 'E': return snapshot_every(r, arg);
	case 'c': r->control_path = arg; return EXIT_OK;
	case 'C': {
		uint64_t mode;
		if (!cli_parse_u64(arg, 8, 0, 0777, &mode)) {
			cli_error("--control-mode: octal permissions (0000..0777) expected: %s", arg);
			return EXIT_USAGE;
		}
		r->control_mode = (unsigned)mode;
		return EXIT_OK;
	}
	case 'S': r->stats = true; return EXIT_OK;
	case 'z': return cli_parse_compress("--compress", arg, &r->compress, &r->compress_level) < 0 ? EXIT_USAGE : EXIT_OK;
	case 'B':
		if (cli_parse_size(arg, &r->max_rate) < 0) {
			cli_error("--max-rate: a size (bytes per second) expected: %s", arg);
			return EXIT_USAGE;
		}
		return EXIT_OK;
	case 'l': a->lazy = true; return EXIT_OK;
	case 'P': r->map_restore = true; return EXIT_OK;
	case 'A': r->page_aligned = true; return EXIT_OK;
	case 'T': a->thp = false; return EXIT_OK;
	case 'h': cli_help(a->restore ? restore_usage : run_usage); return -1;
	case PROGRESS_OPT_FORCE:
	case PROGRESS_OPT_QUIET: progress_option(c, &r->progress_mode); return EXIT_OK;
	default: cli_usage_error(a->restore ? restore_usage : run_usage, NULL); return EXIT_USAGE;
	}
}

/* Parses run's or restore's command line into r and a; EXIT_OK, or the
 * exit code to give now. */
static int run_args(struct runner *r, struct run_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' },     { "rounds", required_argument, NULL, 'r' },
		{ "method", required_argument, NULL, 'M' },  { "snapshot-at", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'c' }, { "stats", no_argument, NULL, 'S' },
		{ "lazy", no_argument, NULL, 'l' },          { "no-thp", no_argument, NULL, 'T' },
		{ "control-mode", required_argument, NULL, 'C' },
		{ "compress", required_argument, NULL, 'z' },
		{ "max-rate", required_argument, NULL, 'B' },
		{ "snapshot-every", required_argument, NULL, 'E' },
		{ "map", no_argument, NULL, 'P' },
		{ "page-aligned", no_argument, NULL, 'A' },
		PROGRESS_OPTS,
		CLI_OPT_HELP,                                CLI_OPT_END,
	};
	int c, rc;
	while ((c = cli_getopt(argc, argv, "h", opts)) != -1)
		if ((rc = run_option(r, a, c, optarg)) != EXIT_OK)
			return rc < 0 ? EXIT_OK : rc;
	cli_usage_fn *usage = a->restore ? restore_usage : run_usage;
	if (optind != argc - 1)
		return cli_usage_error(usage, NULL);
	if (a->restore && (a->mem_set || a->rounds_set)) {
		cli_error("restore does not take --mem or --rounds (they come from the snapshot)");
		return EXIT_USAGE;
	}
	if (!a->restore && (a->lazy || r->map_restore)) {
		cli_error("run does not take --%s", a->lazy ? "lazy" : "map");
		return EXIT_USAGE;
	}
	if (r->map_restore && (a->lazy || r->nsnaps || r->every_ms || r->control_path)) {
		cli_error("--map does not go with --lazy, --snapshot-at, --snapshot-every or --control: RAM mapped "
		          "from the file cannot be snapshotted again");
		return EXIT_USAGE;
	}
	a->operand = argv[optind];
	for (size_t i = 0; i < r->nsnaps; i++)
		r->snaps[i].method = r->method;
	return chain_setup(r);
}

static int run_or_restore(int argc, char **argv, bool restore)
{
	struct runner r;
	struct run_args a = { .restore = restore, .mem = DEFAULT_RAM, .thp = true };
	runner_init(&r);
	int rc = run_args(&r, &a, argc, argv);
	/* --help answered: nothing to run. */
	bool help = rc == EXIT_OK && !a.operand;
	if (rc == EXIT_OK && !help)
		rc = restore ? boot_snapshot(&r, a.operand, a.lazy, a.thp) : boot_guest(&r, a.operand, a.mem, a.rounds, a.thp);
	if (rc == EXIT_OK && !help)
		rc = runner_run(&r);
	runner_free(&r);
	return rc;
}

static int cmd_run(int argc, char **argv)
{
	return run_or_restore(argc, argv, false);
}

static int cmd_restore(int argc, char **argv)
{
	return run_or_restore(argc, argv, true);
}

static void guests_usage(FILE *f)
{
	fprintf(f, "usage: bgsnap-vm guests\nLists the built-in guests, one a line: name and description.\n");
}

static int cmd_guests(int argc, char **argv)
{
	static const struct option opts[] = { CLI_OPT_HELP, CLI_OPT_END };
	int c;
	if ((c = cli_getopt(argc, argv, "h", opts)) != -1)
		return c == 'h' ? cli_help(guests_usage) : cli_usage_error(guests_usage, NULL);
	if (optind < argc)
		return cli_usage_error(guests_usage, NULL);
	for (size_t i = 0; i < vm_guest_count; i++)
		printf("%-8s %s\n", vm_guests[i].name, vm_guests[i].desc);
	return EXIT_OK;
}

static const struct cli_command commands[] = {
	{ "run", cmd_run, "run a guest (snapshots with --snapshot-at, --snapshot-every or the control socket)" },
	{ "restore", cmd_restore, "continue a snapshotted guest" },
	{ "guests", cmd_guests, "list the built-in guests" },
};

int main(int argc, char **argv)
{
	static const struct cli_program vm = {
		.name = "bgsnap-vm", .commands = commands, .ncommands = sizeof(commands) / sizeof(commands[0]),
		.messages_without_command = true,
	};
	signal(SIGPIPE, SIG_IGN);
	return cli_main(&vm, argc, argv);
}
