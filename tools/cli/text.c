/* text.c - bounded printf-style appends (text.h). */
#include "cli/text.h"

#include <stdarg.h>
#include <stdio.h>

void cli_text_add(struct cli_text *t, const char *fmt, ...)
{
	if (t->cap == 0 || t->len >= t->cap - 1) {
		t->full = true;
		return;
	}
	size_t room = t->cap - t->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(t->buf + t->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->buf[t->len] = '\0';
		t->full = true;
	} else if ((size_t)n >= room) {
		t->len = t->cap - 1;
		t->full = true;
	} else {
		t->len += (size_t)n;
	}
}
