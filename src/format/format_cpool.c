/*
 * format_cpool.c - the compressor pool (format_cpool.h).
 *
 * One mutex guards the slots' states; the data of a slot belongs to
 * whoever moved it to its current state (the writer while FILLING, one
 * compressor while BUSY), so the buffers are touched outside the lock and
 * the state changes under it order those accesses.  Workers take the
 * oldest queued chunk first.  A handful of slots: scanning them all is
 * cheaper than keeping queues.
 */
#include "format/format_cpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "format/codec.h"
#include "format/format.h"
#include "util/clock.h"
#include "util/thread.h"

/* The measured speed forgets by halves past this much input: it follows
 * the last 8 to 16 chunks. */
#define MEASURE_WINDOW (64ull << 20)

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
	unsigned nslots;
	unsigned queued, busy, ndone;  /* slots in those states              */
	uint64_t seq;
	int stop;
	size_t frame_cap, page_bound;
	uint64_t list_max;
	struct codec_cctx *own;        /* the writer's workspace             */
	struct worker *workers;
	unsigned nthreads;
	/* Recent compressions (under the lock): raw bytes in, stored bytes
	 * out (raw where the codec failed), CPU time. */
	uint64_t meas_in, meas_out, meas_ns;
};

/* Compresses s; returns the CPU time it took (the compressor's own speed:
 * on a loaded machine the wall time says more about the other threads). */
static uint64_t compress_slot(struct cpool *p, struct codec_cctx *cctx, struct cpool_slot *s)
{
	uint64_t t0 = clock_ns_(CLOCK_THREAD_CPUTIME_ID);
	if (!s->is_list) {
		s->clen = codec_compress(cctx, s->frame, p->frame_cap, s->raw, (size_t)s->count * FMT_PAGE_SIZE);
		return clock_ns_(CLOCK_THREAD_CPUTIME_ID) - t0;
	}
	for (uint64_t i = 0; i < s->count; i++)
		s->pages[i].clen = codec_compress(cctx, s->frame + i * p->page_bound, p->page_bound,
		                                  s->raw + i * FMT_PAGE_SIZE, FMT_PAGE_SIZE);
	return clock_ns_(CLOCK_THREAD_CPUTIME_ID) - t0;
}

/* Under the lock: the oldest slot in `state`, or NULL. */
static struct cpool_slot *oldest(struct cpool *p, int state)
{
	struct cpool_slot *best = NULL;
	for (unsigned i = 0; i < p->nslots; i++) {
		struct cpool_slot *s = &p->slots[i];
		if (s->state == state && (!best || s->seq < best->seq))
			best = s;
	}
	return best;
}

/* Under the lock: the oldest queued slot, now BUSY, or NULL. */
static struct cpool_slot *take_queued(struct cpool *p)
{
	struct cpool_slot *s = p->queued ? oldest(p, SLOT_QUEUED) : NULL;
	if (s) {
		s->state = SLOT_BUSY;
		p->queued--;
		p->busy++;
	}
	return s;
}

/* Under the lock: s was compressed, in `ns`. */
static void mark_done(struct cpool *p, struct cpool_slot *s, uint64_t ns)
{
	s->state = SLOT_DONE;
	p->busy--;
	p->ndone++;
	uint64_t in = s->count * FMT_PAGE_SIZE, out = 0;
	if (!s->is_list)
		out = s->clen ? s->clen : in;
	for (uint64_t i = 0; s->is_list && i < s->count; i++)
		out += s->pages[i].clen ? s->pages[i].clen : FMT_PAGE_SIZE;
	p->meas_in += in;
	p->meas_out += out;
	p->meas_ns += ns;
	if (p->meas_in > MEASURE_WINDOW) {
		p->meas_in /= 2;
		p->meas_out /= 2;
		p->meas_ns /= 2;
	}
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct cpool *p = wk->pool;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct cpool_slot *s = NULL;
		while (!p->stop && !(s = take_queued(p)))
			pthread_cond_wait(&p->work, &p->lock);
		if (!s)
			break;
		pthread_mutex_unlock(&p->lock);
		uint64_t ns = compress_slot(p, wk->cctx, s);
		pthread_mutex_lock(&p->lock);
		mark_done(p, s, ns);
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
		struct cpool_slot *s = &p->slots[i];
		s->raw = malloc(chunk_bytes);
		s->frame = malloc(p->frame_cap);
		s->pages = calloc(p->list_max, sizeof(*s->pages));
		if (!s->raw || !s->frame || !s->pages)
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
	p->nslots = slots < 2 ? 2 : slots;
	p->nthreads = threads;
	p->frame_cap = codec_bound(chunk_bytes);
	p->page_bound = codec_bound(FMT_PAGE_SIZE);
	p->list_max = p->frame_cap / p->page_bound;
	if (p->list_max > chunk_bytes / FMT_PAGE_SIZE)
		p->list_max = chunk_bytes / FMT_PAGE_SIZE;
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
		free(p->slots[i].pages);
	}
	free(p->slots);
	codec_cctx_free(p->own);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

uint64_t cpool_list_max(const struct cpool *p)
{
	return p->list_max;
}

size_t cpool_page_bound(const struct cpool *p)
{
	return p->page_bound;
}

struct cpool_slot *cpool_get(struct cpool *p)
{
	pthread_mutex_lock(&p->lock);
	struct cpool_slot *s = oldest(p, SLOT_FREE);
	if (s) {
		s->state = SLOT_FILLING;
		s->count = 0;
		s->is_list = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return s;
}

void cpool_submit(struct cpool *p, struct cpool_slot *s)
{
	pthread_mutex_lock(&p->lock);
	s->state = SLOT_QUEUED;
	s->seq = ++p->seq;
	p->queued++;
	if (p->nthreads)
		pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

struct cpool_slot *cpool_done(struct cpool *p, int wait)
{
	pthread_mutex_lock(&p->lock);
	struct cpool_slot *d;
	while (!(d = p->ndone ? oldest(p, SLOT_DONE) : NULL) && wait && (p->queued || p->busy)) {
		/* Rather than wait, compress a queued chunk here. */
		struct cpool_slot *s = take_queued(p);
		if (s) {
			pthread_mutex_unlock(&p->lock);
			uint64_t ns = compress_slot(p, p->own, s);
			pthread_mutex_lock(&p->lock);
			mark_done(p, s, ns);
		} else {
			pthread_cond_wait(&p->done, &p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return d;
}

void cpool_release(struct cpool *p, struct cpool_slot *s)
{
	pthread_mutex_lock(&p->lock);
	s->state = SLOT_FREE;
	p->ndone--;
	pthread_mutex_unlock(&p->lock);
}

unsigned cpool_threads(const struct cpool *p)
{
	return p->nthreads;
}

void cpool_rates(struct cpool *p, uint64_t *raw_per_s, uint32_t *ratio_permille)
{
	pthread_mutex_lock(&p->lock);
	*raw_per_s = p->meas_ns ? (uint64_t)((double)p->meas_in * 1e9 / (double)p->meas_ns) : 0;
	uint64_t r = p->meas_in ? p->meas_out * 1000 / p->meas_in : 0;
	*ratio_permille = p->meas_in ? (uint32_t)(r < 1 ? 1 : r > 1000 ? 1000 : r) : 0;
	pthread_mutex_unlock(&p->lock);
}

int cpool_has_free(struct cpool *p)
{
	pthread_mutex_lock(&p->lock);
	int any = oldest(p, SLOT_FREE) != NULL;
	pthread_mutex_unlock(&p->lock);
	return any;
}
