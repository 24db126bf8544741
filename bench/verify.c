/*
 * verify.c - a bench snapshot against the oracle: the file's state blob
 * must describe this workload and repeat the step counts the pause hook
 * recorded; then every page of region "mem", read in file order, must be
 * the oracle's content at those counts.  --corrupt-check damages one of
 * these on purpose, to show that the check fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli/cli.h"

static void report_mismatch(const char *method, const struct wl_mismatch *mm)
{
	fprintf(stderr,
	        "%s: %s: page %" PRIu64 " differs at byte %u: expected %s%" PRId64
	        ", found %s%" PRId64 " (first word 0x%016" PRIx64 ")\n",
	        cli_who(), method, mm->page, mm->word * 8u,
	        mm->expected_step < 0 ? "the initial content" : "the write of step ",
	        mm->expected_step < 0 ? (int64_t)0 : mm->expected_step,
	        mm->found_step < 0 ? "no write, value " : "the write of step ",
	        mm->found_step < 0 ? (int64_t)0 : mm->found_step, mm->found_word0);
}

static int flip_file_byte(const char *path, char *msg, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, len, "--corrupt-check file: open %.300s: %s", path, strerror(errno));
		return -1;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	uint8_t b = 0;
	off_t at = size / 2;
	int ok = size > 0 && pread(fd, &b, 1, at) == 1;
	b ^= 0x10;
	ok = ok && pwrite(fd, &b, 1, at) == 1;
	close(fd);
	if (!ok) {
		snprintf(msg, len, "--corrupt-check file: cannot flip a byte of %.300s", path);
		return -1;
	}
	return 0;
}

/* The state blob must describe this workload and repeat the step counts
 * the pause recorded; they go to steps[]. */
static bool check_blob(bgsnap_reader *r, const struct wl_params *wp, const uint64_t *paused, uint64_t *steps,
                       char *msg, size_t msg_len)
{
	const void *blob;
	size_t blen;
	struct wl_params bp;
	if (bgsnap_reader_find_state(r, WL_BLOB_NAME, &blob, &blen) < 0) {
		snprintf(msg, msg_len, "state blob %s missing: %s", WL_BLOB_NAME, bgsnap_reader_errmsg(r));
		return false;
	}
	if (wl_blob_decode(blob, blen, &bp, steps) || bp.npages != wp->npages || bp.threads != wp->threads ||
	    bp.pattern != wp->pattern || bp.seed != wp->seed || bp.fill != wp->fill) {
		snprintf(msg, msg_len, "state blob %s does not describe this workload", WL_BLOB_NAME);
		return false;
	}
	for (unsigned t = 0; t < wp->threads; t++)
		if (steps[t] != paused[t]) {
			snprintf(msg, msg_len, "state blob: thread %u at step %" PRIu64 ", the pause recorded %" PRIu64, t,
			         steps[t], paused[t]);
			return false;
		}
	return true;
}

/* The pages of region `reg` as the records give them, in file order. */
struct page_check {
	const wl_oracle *oracle;
	unsigned reg;
	const char *method;
	bool damage;                 /* --corrupt-check page: flip one byte  */
	uint64_t seen, bad;
	struct wl_mismatch first;
};

static void check_one(struct page_check *pc, const struct bgsnap_record *rec, uint64_t i)
{
	uint64_t pg = rec->first_page + i;
	struct wl_mismatch mm;
	bool good;
	if (rec->kind == BGSNAP_REC_ZERO) {
		good = wl_oracle_check_zero(pc->oracle, pg, &mm);
	} else {
		uint8_t page[WL_PAGE];
		const uint8_t *d = (const uint8_t *)rec->data + i * WL_PAGE;
		if (pc->damage) {
			memcpy(page, d, WL_PAGE);
			page[WL_PAGE / 2] ^= 1;
			d = page;
			pc->damage = false;
		}
		good = wl_oracle_check_page(pc->oracle, pg, d, &mm);
	}
	pc->seen++;
	if (good)
		return;
	if (pc->bad < 5)
		report_mismatch(pc->method, &mm);
	if (!pc->bad)
		pc->first = mm;
	pc->bad++;
}

/* Reads every record; 0, or -1 with the reader's complaint in msg. */
static int check_pages(bgsnap_reader *r, struct page_check *pc, char *msg, size_t msg_len)
{
	struct bgsnap_record rec;
	int rc;
	while ((rc = bgsnap_reader_next(r, &rec)) == 1) {
		if ((rec.kind != BGSNAP_REC_PAGES && rec.kind != BGSNAP_REC_ZERO) || rec.region != pc->reg)
			continue;
		for (uint64_t i = 0; i < rec.count; i++)
			check_one(pc, &rec, i);
	}
	if (rc < 0) {
		snprintf(msg, msg_len, "reading the snapshot: %s", bgsnap_reader_errmsg(r));
		return -1;
	}
	return 0;
}

/* The same over the image the reader presents, run by run through the
 * index: for the last file of a chain, the whole chain's image (its
 * records alone hold only the pages written since its parent). */
static int check_image(bgsnap_reader *r, struct page_check *pc, uint64_t npages, char *msg, size_t msg_len)
{
	static uint8_t buf[WL_PAGE];
	for (uint64_t p = 0; p < npages;) {
		struct bgsnap_record run;
		int rc = bgsnap_reader_page_run(r, pc->reg, p, &run);
		if (rc < 0) {
			snprintf(msg, msg_len, "page %" PRIu64 " of the image: %s", p, bgsnap_reader_errmsg(r));
			return -1;
		}
		uint64_t end = run.first_page + run.count;
		for (; p < end && p < npages; p++) {
			struct bgsnap_record one = { .kind = run.kind, .region = pc->reg, .first_page = p, .count = 1,
			                             .data = buf };
			if (run.kind == BGSNAP_REC_PAGES && (rc = bgsnap_reader_read_page(r, pc->reg, p, buf)) < 0) {
				snprintf(msg, msg_len, "page %" PRIu64 " of the image: %s", p, bgsnap_reader_errmsg(r));
				return -1;
			}
			check_one(pc, &one, 0);
		}
	}
	return 0;
}

/* --corrupt-check steps: an oracle one step of thread 0 short, whose
 * expectations the last write of thread 0 must then fail. */
static wl_oracle *short_oracle(const struct wl_params *wp, uint64_t *steps)
{
	wl_oracle *o;
	steps[0] = steps[0] ? steps[0] - 1 : 0;
	if (wl_oracle_create(&o, wp))
		return NULL;
	if (wl_oracle_advance(o, steps)) {
		wl_oracle_destroy(o);
		return NULL;
	}
	return o;
}

/* Region "mem" of the workload's size, or -1. */
static int find_mem(bgsnap_reader *r, wl *w)
{
	struct bgsnap_region_info ri;
	int reg = bgsnap_reader_find_region(r, "mem");
	if (reg < 0 || bgsnap_reader_region(r, (unsigned)reg, &ri, sizeof ri) < 0 || ri.size != wl_mem_bytes(w))
		return -1;
	return reg;
}

static bool verify(const char *method, const char *path, wl *w, wl_oracle *oracle, const uint64_t *paused,
                   int corrupt, bool image, char *msg, size_t msg_len)
{
	const struct wl_params *wp = wl_get_params(w);
	char err[512] = "";
	bgsnap_reader *r = NULL;
	wl_oracle *fresh = NULL;
	uint64_t steps[WL_MAX_THREADS];
	struct page_check pc = { .oracle = oracle, .method = method, .damage = corrupt == CORRUPT_PAGE };
	bool ok = false;

	if (corrupt == CORRUPT_FILE && flip_file_byte(path, msg, msg_len))
		return false;
	int rc = bgsnap_reader_open(&r, path, err, sizeof(err));
	if (rc < 0) {
		snprintf(msg, msg_len, "cannot read the snapshot: %s", err[0] ? err : strerror(-rc));
		return false;
	}
	if (!check_blob(r, wp, paused, steps, msg, msg_len))
		goto out;
	if (wl_oracle_advance(oracle, steps) < 0) {
		snprintf(msg, msg_len, "oracle: step counts went backwards");
		goto out;
	}
	if (corrupt == CORRUPT_STEPS && !(pc.oracle = fresh = short_oracle(wp, steps))) {
		snprintf(msg, msg_len, "out of memory");
		goto out;
	}
	if ((rc = find_mem(r, w)) < 0) {
		snprintf(msg, msg_len, "region \"mem\" missing or of the wrong size");
		goto out;
	}
	pc.reg = (unsigned)rc;
	if ((image ? check_image(r, &pc, wp->npages, msg, msg_len) : check_pages(r, &pc, msg, msg_len)) < 0)
		goto out;
	if (pc.seen != wp->npages)
		snprintf(msg, msg_len, "the snapshot holds %" PRIu64 " pages of region mem, expected %" PRIu64, pc.seen,
		         wp->npages);
	else if (pc.damage)
		snprintf(msg, msg_len, "--corrupt-check page: no data page to damage");
	else if (pc.bad)
		snprintf(msg, msg_len, "%" PRIu64 " of %" PRIu64 " pages differ from the pause instant (first: page %" PRIu64 ")",
		         pc.bad, pc.seen, pc.first.page);
	else
		ok = true;
out:
	wl_oracle_destroy(fresh);
	bgsnap_reader_close(r);
	return ok;
}

bool bench_verify(const char *method, const char *path, wl *w, wl_oracle *oracle, const uint64_t *paused,
                  int corrupt, char *msg, size_t msg_len)
{
	return verify(method, path, w, oracle, paused, corrupt, false, msg, msg_len);
}

bool bench_verify_image(const char *method, const char *path, wl *w, wl_oracle *oracle, const uint64_t *paused,
                        char *msg, size_t msg_len)
{
	return verify(method, path, w, oracle, paused, CORRUPT_NONE, true, msg, msg_len);
}
