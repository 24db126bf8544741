/*
 * format_cpool.c - the compressor pool (format_cpool.h).
 *
 * One mutex guards the ring's states; the data of a slot belongs to
 * whoever moved it to its current state (the writer while FILLING, one
 * compressor while BUSY), so the buffers are touched outside the lock and
 * the state changes under it order those accesses.  Workers take the
 * oldest queued chunk, so the chunk the writer waits for next is the one
 * being worked on first.
 */
#include "format/format_cpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "format/codec.h"
#include "format/format.h"
#include "util/thread.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct worker {
	struct cpool *pool;
	struct codec_cctx *cctx;
	pthread_t tid;
	int started;
};

struct cpool {
	pthread_mutex_t lock;
	pthread_cond_t work;           /* a chunk was queued, or stop        */
	pthread_cond_t done;           /* a chunk was compressed             */
	struct cpool_slot *slots;
	unsigned nslots, head, inflight, queued;
	int stop;
	size_t frame_cap;
	struct codec_cctx *own;        /* the writer's workspace             */
	struct worker *workers;
	unsigned nthreads;
};

static void compress_slot(struct cpool *p, struct codec_cctx *cctx, struct cpool_slot *s)
{
	s->clen = codec_compress(cctx, s->frame, p->frame_cap, s->raw, (size_t)s->count * FMT_PAGE_SIZE);
}

/* Under the lock: the oldest queued slot, now BUSY, or NULL. */
static struct cpool_slot *take_queued(struct cpool *p)
{
	if (!p->queued)
		return NULL;
	for (unsigned i = 0; i < p->inflight; i++) {
		struct cpool_slot *s = &p->slots[(p->head + i) % p->nslots];
		if (s->state == SLOT_QUEUED) {
			s->state = SLOT_BUSY;
			p->queued--;
			return s;
		}
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct cpool *p = wk->pool;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct cpool_slot *s;
		while (!p->stop && !(s = take_queued(p)))
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		compress_slot(p, wk->cctx, s);
		pthread_mutex_lock(&p->lock);
		s->state = SLOT_DONE;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int alloc_slots(struct cpool *p, size_t chunk_bytes, struct bgsnap_err *err)
{
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->slots)
		return err_set(err, -ENOMEM, "format: out of memory for the compression buffers");
	for (unsigned i = 0; i < p->nslots; i++) {
		p->slots[i].raw = malloc(chunk_bytes);
		p->slots[i].frame = malloc(p->frame_cap);
		if (!p->slots[i].raw || !p->slots[i].frame)
			return err_set(err, -ENOMEM, "format: out of memory for %u compression buffers of %zu bytes",
			               p->nslots, chunk_bytes + p->frame_cap);
	}
	return 0;
}

static int start_workers(struct cpool *p, int level, struct bgsnap_err *err)
{
	p->workers = calloc(p->nthreads ? p->nthreads : 1, sizeof(*p->workers));
	if (!p->workers)
		return err_set(err, -ENOMEM, "format: out of memory");
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct worker *wk = &p->workers[i];
		wk->pool = p;
		int rc = codec_cctx_new(&wk->cctx, level, err);
		if (rc < 0)
			return rc;
	}
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct worker *wk = &p->workers[i];
		int rc = thread_start(&wk->tid, "bgsnap-zstd", worker_main, wk);
		if (rc < 0)
			return err_set(err, rc, "cannot start compression thread %u of %u", i + 1, p->nthreads);
		wk->started = 1;
	}
	return 0;
}

int cpool_new(struct cpool **out, unsigned threads, unsigned slots, size_t chunk_bytes, int level,
              struct bgsnap_err *err)
{
	*out = NULL;
	struct cpool *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(err, -ENOMEM, "format: out of memory");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->nslots = slots ? slots : 1;
	p->nthreads = threads;
	p->frame_cap = codec_bound(chunk_bytes);
	int rc = alloc_slots(p, chunk_bytes, err);
	if (!rc)
		rc = codec_cctx_new(&p->own, level, err);
	if (!rc)
		rc = start_workers(p, level, err);
	if (rc < 0) {
		cpool_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void cpool_free(struct cpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; p->workers && i < p->nthreads; i++) {
		if (p->workers[i].started)
			pthread_join(p->workers[i].tid, NULL);
		codec_cctx_free(p->workers[i].cctx);
	}
	free(p->workers);
	for (unsigned i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].raw);
		free(p->slots[i].frame);
	}
	free(p->slots);
	codec_cctx_free(p->own);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

struct cpool_slot *cpool_get(struct cpool *p)
{
	struct cpool_slot *s = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->inflight < p->nslots) {
		s = &p->slots[(p->head + p->inflight) % p->nslots];
		s->state = SLOT_FILLING;
		s->count = 0;
		p->inflight++;
	}
	pthread_mutex_unlock(&p->lock);
	return s;
}

void cpool_submit(struct cpool *p, struct cpool_slot *s)
{
	pthread_mutex_lock(&p->lock);
	s->state = SLOT_QUEUED;
	p->queued++;
	if (p->nthreads)
		pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

struct cpool_slot *cpool_done(struct cpool *p, int wait)
{
	pthread_mutex_lock(&p->lock);
	struct cpool_slot *h = p->inflight ? &p->slots[p->head] : NULL;
	while (h && h->state != SLOT_DONE) {
		if (h->state == SLOT_FILLING || !wait) {
			h = NULL;
			break;
		}
		/* Rather than wait, compress a queued chunk here (the head
		 * itself when no worker has taken it yet). */
		struct cpool_slot *s = take_queued(p);
		if (s) {
			pthread_mutex_unlock(&p->lock);
			compress_slot(p, p->own, s);
			pthread_mutex_lock(&p->lock);
			s->state = SLOT_DONE;
		} else {
			pthread_cond_wait(&p->done, &p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return h;
}

void cpool_release(struct cpool *p, struct cpool_slot *s)
{
	pthread_mutex_lock(&p->lock);
	s->state = SLOT_FREE;
	p->head = (p->head + 1) % p->nslots;
	p->inflight--;
	pthread_mutex_unlock(&p->lock);
}

size_t cpool_compress_here(struct cpool *p, void *dst, size_t cap, const void *src, size_t len)
{
	return codec_compress(p->own, dst, cap, src, len);
}
