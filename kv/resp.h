/*
 * resp.h - the RESP2 request parser: multibulk ("*N\r\n$L\r\n...\r\n") and
 * inline ("PING\r\n") commands, read incrementally from a client's input
 * buffer, with hard limits on every length a client can announce.
 *
 * The parser never copies: a complete command's arguments are offsets into
 * the buffer it was given.  It keeps its position between calls, so a large
 * command arriving in many reads is scanned once.
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stddef.h>

struct resp_limits {
	size_t bulk_max;             /* longest argument (proto-max-bulk-len)  */
	size_t args_max;             /* most arguments in one command          */
	size_t inline_max;           /* longest inline command / length line   */
};

struct resp_arg {
	size_t off, len;
};

struct resp_parser {
	size_t pos;                  /* bytes of the current command consumed  */
	long long nargs;             /* announced by '*'; -1 before it is read */
	size_t argc;
	size_t argv_cap;
	struct resp_arg *argv;
	int inline_cmd;
};

enum {
	RESP_MORE = 0,               /* incomplete: call again with more bytes */
	RESP_CMD = 1,                /* argv[0..argc) complete; argc may be 0  */
	RESP_ERR = -1,               /* protocol error: reply *err and close   */
	RESP_NOMEM = -2,
};

void resp_init(struct resp_parser *p);
void resp_free(struct resp_parser *p);

/*
 * Parses the command at the start of buf[0..len).  On RESP_CMD, *used is
 * its length in bytes: the caller executes it, drops those bytes and calls
 * resp_next before parsing the next one.  On RESP_ERR, *err is Redis's
 * message for it (without "-ERR ").
 */
int resp_parse(struct resp_parser *p, const char *buf, size_t len, const struct resp_limits *lim,
               size_t *used, const char **err);
/* Forgets the command just returned. */
void resp_next(struct resp_parser *p);

#endif
