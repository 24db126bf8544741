/* cli.c - the command-line floor (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char who[128] = "bgsnap";

const char *cli_who(void)
{
	return who;
}

static void verror(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", who);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(fmt, ap);
	va_end(ap);
}

int cli_fail(char *err, size_t err_len, int code, const char *fmt, ...)
{
	if (err && err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return code;
}

static void program_usage(const struct cli_program *p, FILE *f)
{
	fprintf(f, "usage: %s COMMAND [OPTIONS]   (%s COMMAND --help for details)\n\ncommands:\n", p->name, p->name);
	for (size_t i = 0; i < p->ncommands; i++)
		fprintf(f, "  %-8s %s\n", p->commands[i].name, p->commands[i].summary);
	fprintf(f, "\n%s %s\n", p->name, bgsnap_version());
}

int cli_main(const struct cli_program *p, int argc, char **argv)
{
	snprintf(who, sizeof(who), "%s", p->name);
	if (argc < 2) {
		program_usage(p, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		program_usage(p, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("%s %s\n", p->name, bgsnap_version());
		return EXIT_OK;
	}
	for (size_t i = 0; i < p->ncommands; i++) {
		const struct cli_command *c = &p->commands[i];
		if (strcmp(argv[1], c->name))
			continue;
		if (!p->messages_without_command)
			snprintf(who, sizeof(who), "%s %s", p->name, c->name);
		optind = 0;   /* glibc: start a fresh scan */
		opterr = 0;   /* cli_getopt says what is wrong */
		return c->run(argc - 1, argv + 1);
	}
	cli_error("unknown command '%s'", argv[1]);
	program_usage(p, stderr);
	return EXIT_USAGE;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	/* A leading ':' makes a missing value ':' rather than '?'. */
	char opts[64];
	snprintf(opts, sizeof(opts), ":%s", shortopts);
	int prev = optind ? optind : 1;
	int c = getopt_long(argc, argv, opts, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	/* The offending word: getopt has moved past it unless it stopped inside
	 * a group of short options ("-xj"); there, name the one letter. */
	const char *word = optind > prev ? argv[optind - 1] : argv[prev];
	char letter[3] = { '-', (char)optopt, 0 };
	if (strncmp(word, "--", 2) && optopt > 0 && optopt < 256)
		word = letter;
	if (c == ':')
		cli_error("option '%s' needs a value", word);
	else
		cli_error("unknown option '%s'", word);
	return '?';
}

int cli_help(cli_usage_fn *usage)
{
	usage(stdout);
	return EXIT_OK;
}

int cli_usage_error(cli_usage_fn *usage, const char *fmt, ...)
{
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		verror(fmt, ap);
		va_end(ap);
	}
	usage(stderr);
	return EXIT_USAGE;
}

/* strtoull skips leading white space and takes a sign ("-1" is 2^64-1):
 * a number on the command line starts with its first digit. */
static bool starts_with_digit(const char *s)
{
	return s[0] >= '0' && s[0] <= '9';
}

bool cli_parse_u64(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	if (!starts_with_digit(s))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (errno || *end || end == s || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

bool cli_opt_number(const char *opt, const char *arg, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (cli_parse_u64(arg, 10, lo, hi, out))
		return true;
	cli_error("--%s: '%s' is not a number in %llu..%llu", opt, arg, (unsigned long long)lo,
	          (unsigned long long)hi);
	return false;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!starts_with_digit(s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

bgsnap_reader *cli_open_snapshot(const char *path)
{
	char err[600] = "";
	bgsnap_reader *r;
	int rc = bgsnap_reader_open(&r, path, err, sizeof(err));
	if (rc < 0) {
		cli_error("%s: %s", path, err[0] ? err : strerror(-rc));
		return NULL;
	}
	return r;
}

int cli_parse_compress(const char *opt, const char *s, int *method, int *level)
{
	uint64_t v = 0;
	if (!strcmp(s, "none")) {
		*method = BGSNAP_COMPRESS_NONE;
		*level = 0;
		return 0;
	}
	int m = BGSNAP_COMPRESS_ZSTD;
	const char *lv = NULL;
	if (!strncmp(s, "zstd:auto", 9) && (!s[9] || s[9] == ':')) {
		m = BGSNAP_COMPRESS_ZSTD_AUTO;
		lv = s[9] ? s + 10 : NULL;
	} else if (!strncmp(s, "zstd", 4) && (!s[4] || s[4] == ':')) {
		lv = s[4] ? s + 5 : NULL;
	} else {
		lv = "";   /* not a level: the error below */
	}
	/* Negative levels (zstd's fast modes) are written zstd:-N. */
	int neg = lv && lv[0] == '-';
	if (lv && !cli_parse_u64(lv + neg, 10, 1, neg ? 7 : 19, &v)) {
		cli_error("%s: '%s' is not none, zstd, zstd:LEVEL (1..19, or -1..-7: faster), zstd:auto or "
		          "zstd:auto:LEVEL", opt, s);
		return -EINVAL;
	}
	*method = m;
	*level = neg ? -(int)v : (int)v;
	return 0;
}

const char *cli_compress_name(int method)
{
	return method == BGSNAP_COMPRESS_ZSTD ? "zstd" : method == BGSNAP_COMPRESS_ZSTD_AUTO ? "zstd:auto" : "none";
}

static int open_any(const char *file, bgsnap_reader **r, int *fd, char *err, size_t err_len)
{
	*fd = -1;
	if (!strcmp(file, "-"))
		return bgsnap_reader_open_stream(r, STDIN_FILENO, err, err_len);
	int rc = bgsnap_reader_open(r, file, err, err_len);
	if (rc != -ESPIPE)
		return rc;
	*fd = open(file, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return cli_fail(err, err_len, -errno, "%s", strerror(errno));
	return bgsnap_reader_open_stream(r, *fd, err, err_len);
}

bgsnap_reader *cli_open_any(const char *path, int *fd)
{
	char err[600] = "";
	bgsnap_reader *r = NULL;
	int rc = open_any(path, &r, fd, err, sizeof(err));
	if (rc < 0) {
		cli_error("%s: %s", path, err[0] ? err : strerror(-rc));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return NULL;
	}
	return r;
}
