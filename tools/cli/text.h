/*
 * text.h - text built by printf-style appends into a caller's buffer, for
 * replies and state blobs: an append that does not fit keeps what fitted
 * (always NUL-terminated) and marks the text full, so the caller decides
 * whether a cut text is an error (a state blob) or acceptable (a report).
 */
#ifndef BGSNAP_TOOLS_CLI_TEXT_H
#define BGSNAP_TOOLS_CLI_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct cli_text {
	char *buf;
	size_t cap, len;             /* len < cap once anything is appended    */
	bool full;                   /* an append was cut                      */
};

/* An empty text writing into the array `arr` (not a pointer). */
#define CLI_TEXT(arr) ((struct cli_text){ .buf = (arr), .cap = sizeof(arr) })

void cli_text_add(struct cli_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
