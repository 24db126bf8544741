/*
 * track_ops.c - the life cycle the tracking methods (uffd, uffd-signal,
 * mprotect) share, as the ops of struct method_ops (TRACK_LIFE_CYCLE in
 * track.h).  e->method_priv is the struct track; the method's own state
 * hangs from it (track.method) and its hooks are track.m.
 *
 * Every op here is safe on a track whose set-up stopped anywhere: the
 * track and the method's state exist before anything can fail, protection
 * is removed only if a protect call was made, and the method's cleanup
 * runs only if its prepare was called (it then cleans up after itself
 * wherever it stopped).
 */
#include "engine/incr.h"
#include "engine/track.h"

#include <stdlib.h>
#include <unistd.h>

int track_op_prepare(struct bgsnap_engine *e)
{
	const struct track_method *m = e->ops->track;
	/* A chain this method tracks itself: the track of its last run, if
	 * that run committed (incr_begin checked that it still applies). */
	struct track *kept = incr_track_take(e);
	if (kept) {
		e->method_priv = kept;
		int r = track_reuse(kept);
		if (!r && kept->m->resume)
			r = kept->m->resume(kept);
		if (!r)
			r = incr_sync_prearm(kept);
		return r;
	}
	struct track *t = calloc(1, sizeof(*t));
	void *priv = calloc(1, m->priv_size);
	if (!t || !priv) {
		free(t);
		free(priv);
		return err_set(&e->err, -ENOMEM, "out of memory");
	}
	e->method_priv = t;
	int r = track_init(t, e, m, priv);
	if (r)
		return r;
	t->pid = getpid();
	t->keep = incr_tracks_itself(e);
	/* Neighbours saved with a faulting page would be unprotected with
	 * it, and so marked written for the next snapshot. */
	if (t->keep)
		t->fault_around = 1;
	t->prepared = 1;
	r = m->prepare(t);
	if (!r)
		incr_precopy(t);
	return r;
}

int track_op_protect(struct bgsnap_engine *e)
{
	return track_protect_in_pause(e->method_priv);
}

/* On failure the engine aborts: nothing was started. */
int track_op_launch(struct bgsnap_engine *e)
{
	struct track *t = e->method_priv;
	if (t->m->after_pause)
		t->m->after_pause(t);
	return track_launch(t);
}

int track_op_join(struct bgsnap_engine *e)
{
	return track_join(e->method_priv);
}

void track_op_cancel(struct bgsnap_engine *e)
{
	struct track *t = e->method_priv;
	if (t && t->cb_ready)
		copybuf_close(&t->cb);
}

void track_op_abort(struct bgsnap_engine *e)
{
	struct track *t = e->method_priv;
	if (!t)
		return;
	if (t->cb_ready)
		copybuf_close(&t->cb);
	if (t->protecting)
		track_unprotect_all(t);
	if (t->prepared && t->m->writer_end)
		t->m->writer_end(t);
}

void track_op_release(struct bgsnap_engine *e)
{
	struct track *t = e->method_priv;
	if (!t)
		return;
	e->method_priv = NULL;
	/* A committed run of a chain that this method tracks: the track goes
	 * on, registered, until the next pause. */
	if (t->keep && t->keep_ok && e->result == 0 && incr_track_keep(e, t))
		return;
	if (t->prepared) {
		if (t->m->writer_end)
			t->m->writer_end(t);
		if (t->m->release)
			t->m->release(t);
	}
	track_free(t);
	free(t->method);
	free(t);
}
