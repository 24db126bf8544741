/*
 * persist.c - bgsnap-kv's snapshots and restores.
 *
 * A snapshot is one bgsnap region, "arena" (the whole database, allocator
 * included), plus the state blob "kv" that says which build layout and
 * arena it came from.  BGSAVE starts the engine from the event loop and a
 * waiter thread blocks in bgsnap_wait(), then signals the loop through an
 * eventfd: the loop never waits for the save.  The pause hook has nothing to
 * stop: the loop itself is the only writer, and it is inside bgsnap_start.
 *
 * The region is the arena up to its bump pointer (never-allocated pages
 * are not part of the database).  A restore maps a fresh arena of the same
 * size at the same fixed address, so the pointers stored in it are valid
 * again, and fills it eagerly (before serving) or
 * lazily (serving at once; first touches of missing pages are fetched).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cli/clock.h"
#include "kv.h"

#define REGION_NAME "arena"

void persist_path(const struct server *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", s->cfg.dir, s->cfg.dbfilename);
}

int persist_init(struct server *s)
{
	struct persist *p = &s->ps;
	p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->evfd < 0)
		return -errno;
	p->lastsave = (int64_t)time(NULL);
	p->last_ok = true;
	p->last_method = s->cfg.method;
	return 0;
}

/* ---- hooks ---- */

static int hook_save_state(bgsnap_state *st, void *ctx)
{
	struct server *s = ctx;
	char blob[256];
	int n = snprintf(blob, sizeof(blob), "%slayout=%u\narena_base=0x%" PRIxPTR "\narena_bytes=%zu\nkeys=%" PRIu64 "\n",
	                 KV_STATE_MAGIC, ARENA_LAYOUT, ARENA_BASE, s->cfg.maxmemory, dict_size(s->db));
	return bgsnap_state_add(st, KV_STATE_NAME, blob, (size_t)n);
}

static void engine_log(void *ctx, int level, const char *msg)
{
	if (level <= BGSNAP_LOG_WARN)
		fprintf(stderr, "bgsnap-kv: bgsnap: %s\n", msg);
}

static int make_engine(struct server *s, int method, bgsnap_engine **out, char *err, size_t err_len)
{
	struct bgsnap_options o;
	bgsnap_options_init(&o);
	o.method = method;
	o.pre_protect = s->cfg.pre_protect;
	if (s->cfg.copy_buffer)
		o.copy_buffer_bytes = s->cfg.copy_buffer;
	o.log = engine_log;
	bgsnap_engine *e;
	int rc = bgsnap_create(&e, &o);
	if (rc < 0) {
		snprintf(err, err_len, "ERR cannot create the snapshot engine: %s", strerror(-rc));
		return rc;
	}
	struct bgsnap_hooks h = { .save_state = hook_save_state, .ctx = s };
	/* Only the part of the arena ever allocated from: the pages past the
	 * bump pointer hold nothing the database refers to, and the loop that
	 * could move it is the thread running this (it stays put until the
	 * pause).  A save then costs the data, not --maxmemory. */
	size_t used = (size_t)((s->db->bump + 4095) & ~(uint64_t)4095);
	rc = bgsnap_add_region(e, REGION_NAME, s->db, used);
	if (rc >= 0)
		rc = bgsnap_set_hooks(e, &h);
	if (rc >= 0 && s->cfg.fault_around > 1)
		rc = bgsnap_set_param(e, BGSNAP_PARAM_FAULT_AROUND_PAGES, s->cfg.fault_around);
	if (rc < 0) {
		snprintf(err, err_len, "ERR snapshot setup failed: %s", bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-rc));
		bgsnap_destroy(e);
		return rc;
	}
	*out = e;
	return 0;
}

/* ---- BGSAVE ---- */

static void *waiter_main(void *arg)
{
	struct server *s = arg;
	s->ps.wait_rc = bgsnap_wait(s->ps.eng);
	uint64_t one = 1;
	ssize_t n = write(s->ps.evfd, &one, sizeof(one));
	(void)n; /* an eventfd write of 1 cannot fail short of overflow */
	return NULL;
}

static void finish(struct server *s, int rc, bgsnap_engine *e, uint64_t t0_ms)
{
	struct persist *p = &s->ps;
	bgsnap_get_stats(e, &p->last, sizeof p->last);
	p->last_method = p->last.method;
	p->last_save_ms = p->last.total_us / 1000;
	p->last_ok = rc == 0;
	if (rc == 0) {
		p->lastsave = (int64_t)(t0_ms / 1000);
		p->dirty -= p->dirty_at_start < p->dirty ? p->dirty_at_start : p->dirty;
		fprintf(stderr, "bgsnap-kv: snapshot saved (%s): pause %" PRIu64 " us, %" PRIu64 " ms, %" PRIu64 " bytes\n",
		        bgsnap_method_name(p->last.method), p->last.pause_us, p->last_save_ms, p->last.bytes_written);
	} else {
		fprintf(stderr, "bgsnap-kv: snapshot failed: %s\n", bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-rc));
	}
	p->dirty_at_start = 0;
	bgsnap_destroy(e);
}

int persist_bgsave(struct server *s, char *err, size_t err_len)
{
	struct persist *p = &s->ps;
	if (p->eng) {
		snprintf(err, err_len, "ERR Background save already in progress");
		return -EBUSY;
	}
	if (p->lazy) {
		snprintf(err, err_len, "ERR Background restore in progress: BGSAVE can run once every page is in");
		return -EBUSY;
	}
	bgsnap_engine *e;
	int rc = make_engine(s, s->cfg.method, &e, err, err_len);
	if (rc < 0)
		return rc;
	char path[2048];
	persist_path(s, path, sizeof(path));
	p->started_ms = (uint64_t)dict_now_ms();
	p->dirty_at_start = p->dirty;
	/* The loop answers nobody while bgsnap_start runs (the write-protect
	 * before the pause included): that whole time is what Redis's
	 * latest_fork_usec (the fork() call) compares with. */
	uint64_t t0 = mono_ns();
	rc = bgsnap_start(e, path);
	p->start_call_us = (mono_ns() - t0) / 1000;
	if (rc < 0) {
		snprintf(err, err_len, "ERR BGSAVE failed: %s", bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-rc));
		p->last_ok = false;
		p->dirty_at_start = 0;
		bgsnap_destroy(e);
		return rc;
	}
	p->eng = e;
	if (s->cfg.save_nice)
		kv_renice_save_threads(s->cfg.save_nice);
	if (pthread_create(&p->waiter, NULL, waiter_main, s)) {
		/* No thread: the save is as good as SAVE. */
		rc = bgsnap_wait(e);
		p->eng = NULL;
		finish(s, rc, e, p->started_ms);
	}
	return 0;
}

static void reap_bgsave(struct server *s)
{
	struct persist *p = &s->ps;
	uint64_t v;
	/* Nothing to read: the save still runs. */
	if (read(p->evfd, &v, sizeof(v)) != sizeof(v))
		return;
	pthread_join(p->waiter, NULL);
	bgsnap_engine *e = p->eng;
	p->eng = NULL;
	finish(s, p->wait_rc, e, p->started_ms);
}

void persist_cancel(struct server *s)
{
	struct persist *p = &s->ps;
	if (!p->eng)
		return;
	bgsnap_cancel(p->eng);
	pthread_join(p->waiter, NULL);
	uint64_t v;
	if (read(p->evfd, &v, sizeof(v)) < 0)
		v = 0;
	bgsnap_engine *e = p->eng;
	p->eng = NULL;
	finish(s, p->wait_rc, e, p->started_ms);
}

/* ---- lazy restore ---- */

int persist_lazy_finish(struct server *s)
{
	struct persist *p = &s->ps;
	int rc = bgsnap_lazy_wait(p->lazy);
	struct bgsnap_lazy_stats ls;
	bgsnap_lazy_get_stats(p->lazy, &ls, sizeof ls);
	p->restore_total_us = ls.total_us;
	if (rc < 0) {
		/* Pages that could not be read are poisoned: the data is gone. */
		fprintf(stderr, "bgsnap-kv: lazy restore failed: %s\n", bgsnap_lazy_errmsg(p->lazy));
		exit(1);
	}
	bgsnap_lazy_free(p->lazy);
	bgsnap_reader_close(p->lazy_reader);
	p->lazy = NULL;
	p->lazy_reader = NULL;
	return 0;
}

int persist_save(struct server *s, char *err, size_t err_len)
{
	struct persist *p = &s->ps;
	if (p->eng) {
		snprintf(err, err_len, "ERR Background save already in progress");
		return -EBUSY;
	}
	if (p->lazy)
		persist_lazy_finish(s);
	bgsnap_engine *e;
	int rc = make_engine(s, BGSNAP_METHOD_STOP, &e, err, err_len);
	if (rc < 0)
		return rc;
	char path[2048];
	persist_path(s, path, sizeof(path));
	uint64_t t0 = (uint64_t)dict_now_ms();
	p->dirty_at_start = p->dirty;
	rc = bgsnap_start(e, path);
	if (rc == 0)
		rc = bgsnap_wait(e);
	if (rc < 0)
		snprintf(err, err_len, "ERR SAVE failed: %s", bgsnap_errmsg(e)[0] ? bgsnap_errmsg(e) : strerror(-rc));
	finish(s, rc, e, t0);
	return rc;
}

void persist_poll(struct server *s)
{
	struct persist *p = &s->ps;
	if (p->eng)
		reap_bgsave(s);
	if (p->lazy) {
		struct bgsnap_lazy_stats ls;
		if (bgsnap_lazy_get_stats(p->lazy, &ls, sizeof ls) == 0 && ls.done)
			persist_lazy_finish(s);
	}
	if (s->cfg.save_seconds && !p->eng && !p->lazy) {
		uint64_t now = mono_ns() / 1000000;
		if (!p->next_save_ms)
			p->next_save_ms = now + (uint64_t)s->cfg.save_seconds * 1000;
		if (now >= p->next_save_ms) {
			p->next_save_ms = now + (uint64_t)s->cfg.save_seconds * 1000;
			char err[256];
			if (p->dirty && persist_bgsave(s, err, sizeof(err)) < 0)
				fprintf(stderr, "bgsnap-kv: --save: %s\n", err);
		}
	}
}
