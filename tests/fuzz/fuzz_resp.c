/*
 * fuzz_resp.c - libFuzzer target: bgsnap-kv's RESP2 request parser
 * (kv/resp.c) on arbitrary bytes, with small limits so that every limit is
 * reached.  The bytes are parsed twice: whole, and arriving in pieces whose
 * sizes come from the input itself, as from a socket.  Both must yield the
 * same commands (argument bytes compared) and the same end (an error, or
 * waiting for more); every argument must lie inside the bytes consumed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct resp_limits lim = { .bulk_max = 1000, .args_max = 64, .inline_max = 256 };

#define MAX_CMDS 256

struct outcome {
	size_t ncmds;
	uint64_t digest[MAX_CMDS];
	int end;                     /* RESP_MORE or RESP_ERR                   */
};

static uint64_t digest_cmd(const struct resp_parser *p, const char *buf, size_t used)
{
	uint64_t h = 1469598103934665603ull ^ p->argc;
	for (size_t i = 0; i < p->argc; i++) {
		const struct resp_arg *a = &p->argv[i];
		if (a->off > used || a->len > used - a->off)
			abort();
		h = (h ^ a->len) * 1099511628211ull;
		for (size_t j = 0; j < a->len; j++)
			h = (h ^ (uint8_t)buf[a->off + j]) * 1099511628211ull;
	}
	return h;
}

/* Parses data[0..size), `step(k)` bytes more visible each time. */
static void run(const uint8_t *data, size_t size, const uint8_t *steps, size_t nsteps, struct outcome *o)
{
	struct resp_parser p;
	resp_init(&p);
	memset(o, 0, sizeof(*o));
	size_t start = 0, visible = 0, k = 0;
	o->end = RESP_MORE;
	while (o->ncmds < MAX_CMDS) {
		size_t used = 0;
		const char *err = NULL;
		int r = resp_parse(&p, (const char *)data + start, visible - start, &lim, &used, &err);
		if (r == RESP_CMD) {
			if (used == 0 || used > visible - start)
				abort();
			o->digest[o->ncmds++] = digest_cmd(&p, (const char *)data + start, used);
			resp_next(&p);
			start += used;
			continue;
		}
		if (r == RESP_ERR) {
			if (!err || strncmp(err, "Protocol error", 14))
				abort();
			o->end = RESP_ERR;
			break;
		}
		if (r != RESP_MORE)
			abort();
		if (visible == size)
			break;
		size_t step = nsteps ? 1 + steps[k++ % nsteps] % 64 : size;
		visible = size - visible < step ? size : visible + step;
	}
	resp_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct outcome whole, pieces;
	run(data, size, NULL, 0, &whole);
	run(data, size, data, size, &pieces);
	if (whole.ncmds != pieces.ncmds || whole.end != pieces.end ||
	    memcmp(whole.digest, pieces.digest, whole.ncmds * sizeof(whole.digest[0])))
		abort();
	return 0;
}
