/*
 * method_stop.c - the stop-the-world baseline (what a plain savevm does):
 * every page, the state, the index and the trailer are written and the file
 * committed while the host is paused.  No tracking, no extra memory, and the
 * longest pause: the reference every other method's pause is measured
 * against.
 */
#include "engine/engine.h"
#include "engine/incr.h"

#include <string.h>

#include "util/clock.h"

static int stop_protect(struct bgsnap_engine *e)
{
	/* Runs in the host's thread, with SIGPIPE blocked by the engine. */
	uint64_t t0 = now_ns();
	int r = incr_active(e) ? incr_write_dirty(e, &e->fw, 0) : engine_write_all(e, &e->fw, 0);
	/* The trailer is written inside the pause: record the pause so far. */
	e->meta.pause_us = us_since(e->t_pause_ns);
	if (!r)
		r = engine_finish_file(e, &e->fw, &e->sink, &e->werr);
	engine_progress(e, &e->fw);
	atomic_store(&e->live->writer_us, us_since(t0));
	if (r == -ECANCELED)
		err_set(&e->err, r, "the snapshot was cancelled");
	else if (r)
		err_set(&e->err, r, "%s", e->werr.msg);

	return r;
}

/* Nothing to prepare, to run after the pause or to undo: protect does it all. */
const struct method_ops method_stop_ops = {
	.method = BGSNAP_METHOD_STOP,
	.protect = stop_protect,
};
