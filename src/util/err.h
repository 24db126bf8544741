/*
 * err.h - how the library reports failures: a negative errno value plus a
 * message.  Every internal function that can fail takes a struct bgsnap_err
 * and returns err_set()'s result, so the message is written where the
 * failure happened, with the reason.
 */
#ifndef BGSNAP_ERR_H
#define BGSNAP_ERR_H

#include <errno.h>
#include <stddef.h>

struct bgsnap_err {
	int code;        /* negative errno of the first failure, 0 if none */
	char msg[512];
};

/* Records (code, message) unless a failure is already recorded; returns code
 * (negative errno).  The message is printf-formatted. */
int err_set(struct bgsnap_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As err_set, appending ": strerror(-code)". */
int err_sys(struct bgsnap_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void err_clear(struct bgsnap_err *err);

#endif
