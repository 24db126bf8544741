/* json.c - the tools' JSON writer (see json.h). */
#include "json.h"

#include <inttypes.h>
#include <stdarg.h>

void json_escape(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void json_begin(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->has_member[0] = false;
}

/* The comma and the key before a value. */
static void member(struct json *j, const char *key)
{
	if (j->has_member[j->depth])
		fputc(',', j->f);
	j->has_member[j->depth] = true;
	if (key) {
		json_escape(j->f, key);
		fputc(':', j->f);
	}
}

static void open_(struct json *j, const char *key, char c)
{
	member(j, key);
	fputc(c, j->f);
	/* Deeper than the tools ever nest: keep writing, commas may be off. */
	if (j->depth + 1 < JSON_MAX_DEPTH)
		j->depth++;
	j->has_member[j->depth] = false;
}

static void close_(struct json *j, char c)
{
	fputc(c, j->f);
	if (j->depth)
		j->depth--;
}

void json_open(struct json *j, const char *key) { open_(j, key, '{'); }
void json_close(struct json *j) { close_(j, '}'); }
void json_open_array(struct json *j, const char *key) { open_(j, key, '['); }
void json_close_array(struct json *j) { close_(j, ']'); }

void json_string(struct json *j, const char *key, const char *s)
{
	member(j, key);
	json_escape(j->f, s);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_double(struct json *j, const char *key, int decimals, double v)
{
	member(j, key);
	fprintf(j->f, "%.*f", decimals, v);
}

void json_raw(struct json *j, const char *key, const char *fmt, ...)
{
	member(j, key);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(j->f, fmt, ap);
	va_end(ap);
}

void json_end_line(struct json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
	j->depth = 0;
	j->has_member[0] = false;
}
