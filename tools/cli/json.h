/*
 * json.h - the one JSON writer of the tools: objects and arrays written
 * straight to a stream, commas and string escapes handled here, no spaces
 * (one object per line is the tools' output format; field order is the
 * order of the calls).
 *
 *   struct json j;
 *   json_begin(&j, stdout);
 *   json_open(&j, NULL);                 {
 *   json_string(&j, "method", "uffd");     "method":"uffd"
 *   json_u64(&j, "pages", 12);             ,"pages":12
 *   json_double(&j, "ms", 3, 1.5);         ,"ms":1.500
 *   json_close(&j);                      }
 *   json_end_line(&j);                   newline, flushed
 *
 * A member's key is NULL for an array element or the top-level value.
 */
#ifndef BGSNAP_TOOLS_JSON_H
#define BGSNAP_TOOLS_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *f;
	unsigned depth;
	bool has_member[JSON_MAX_DEPTH];   /* a comma before the next one */
};

void json_begin(struct json *j, FILE *f);
void json_open(struct json *j, const char *key);          /* {  */
void json_close(struct json *j);                          /* }  */
void json_open_array(struct json *j, const char *key);    /* [  */
void json_close_array(struct json *j);                    /* ]  */
void json_string(struct json *j, const char *key, const char *s);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_bool(struct json *j, const char *key, bool v);
/* A fixed-point number with `decimals` digits after the point. */
void json_double(struct json *j, const char *key, int decimals, double v);
/* A value formatted by the caller: a number in another format ("%.4g"), or
 * JSON text taken as it is (an "id" echoed back). */
void json_raw(struct json *j, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Ends a line of output: a newline, and the stream flushed. */
void json_end_line(struct json *j);

/* `s` as a JSON string, quotes included: '"', '\\' and control characters
 * (and DEL) escaped, other bytes as they are. */
void json_escape(FILE *f, const char *s);

#endif
