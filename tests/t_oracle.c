/*
 * t_oracle.c - the bench consistency oracle, without any snapshot engine:
 * writers run, are paused, the memory is copied while they are parked, and
 * the copy must match the oracle replayed to the recorded step counts, for
 * every pattern and 1, 2 and 4 threads.  The checks that can fail are shown
 * to fail: a copy taken later, a torn page, a page from the wrong place,
 * wrong step counts.
 *
 * The workload lives in the bgsnap tool (bench/), not in the library, so it
 * is compiled into this test directly (with the tools' floor it uses).
 */
#include "../bench/content.c"
#include "../bench/oracle.c"
#include "../bench/memkind.c"
#include "../bench/workload.c"
#include "../tools/cli/cli.c"

static int failures;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                     \
			fputc('\n', stderr);                              \
			failures++;                                       \
		}                                                         \
	} while (0)

/* Returns the number of mismatching pages of `copy` against `o`. */
static uint64_t count_bad(const wl_oracle *o, const uint8_t *copy, uint64_t npages,
                          struct wl_mismatch *first)
{
	uint64_t bad = 0;
	for (uint64_t p = 0; p < npages; p++) {
		struct wl_mismatch mm;
		if (!wl_oracle_check_page(o, p, copy + p * WL_PAGE, &mm)) {
			if (!bad && first)
				*first = mm;
			bad++;
		}
	}
	return bad;
}

static void one(int pattern, unsigned threads)
{
	const uint64_t npages = 2048;  /* 8 MiB */
	struct wl_config cfg = {
		.params = { .npages = npages, .threads = threads, .pattern = pattern, .seed = 42 },
	};
	char err[256];
	wl *w;
	int r = wl_create(&w, &cfg, err, sizeof(err));
	CHECK(r == 0, "wl_create: %s", err);
	if (r)
		return;
	size_t len = wl_mem_bytes(w);
	uint8_t *c1 = malloc(len), *c2 = malloc(len);
	uint64_t s1[WL_MAX_THREADS], s2[WL_MAX_THREADS];
	CHECK(c1 && c2, "malloc");
	if (!c1 || !c2)
		goto out;

	/* The initial content is what the oracle expects at step 0. */
	wl_oracle *o;
	CHECK(wl_oracle_create(&o, &cfg.params) == 0, "oracle create");
	struct wl_mismatch mm = { 0 };
	CHECK(count_bad(o, wl_mem(w), npages, &mm) == 0, "initial content: page %llu word %u",
	      (unsigned long long)mm.page, mm.word);

	CHECK(wl_start(w, err, sizeof(err)) == 0, "wl_start: %s", err);
	CHECK(wl_wait_progress(w, 5000) == 0, "writers made no progress");
	sleep_ms(10);
	wl_pause(w);
	memcpy(c1, wl_mem(w), len);
	memcpy(s1, wl_paused_steps(w), sizeof(s1));
	wl_resume(w, true);
	sleep_ms(10);
	CHECK(wl_wait_progress(w, 5000) == 0, "writers made no progress after a resume");
	wl_pause(w);
	memcpy(c2, wl_mem(w), len);
	memcpy(s2, wl_paused_steps(w), sizeof(s2));
	wl_resume(w, false);
	/* Stop and restart: steps continue, nothing else resets. */
	wl_stop(w);
	CHECK(wl_start(w, err, sizeof(err)) == 0, "wl_start again: %s", err);
	sleep_ms(5);
	CHECK(wl_wait_progress(w, 5000) == 0, "writers made no progress after a restart");
	wl_pause(w);
	uint8_t *c3 = malloc(len);
	uint64_t s3[WL_MAX_THREADS];
	CHECK(c3 != NULL, "malloc");
	if (c3)
		memcpy(c3, wl_mem(w), len);
	memcpy(s3, wl_paused_steps(w), sizeof(s3));
	wl_resume(w, false);
	wl_stop(w);

	struct wl_latency lat;
	CHECK(wl_first_write_latency(w, &lat) == 0, "latency");
	CHECK(lat.samples > 0, "no first write was timed after an armed resume");

	uint64_t total = 0;
	for (unsigned t = 0; t < threads; t++) {
		CHECK(s2[t] > s1[t] && s3[t] > s2[t], "thread %u made no progress (%llu %llu %llu)",
		      t, (unsigned long long)s1[t], (unsigned long long)s2[t], (unsigned long long)s3[t]);
		total += s3[t];
	}

	CHECK(wl_oracle_advance(o, s1) == 0, "advance 1");
	uint64_t bad = count_bad(o, c1, npages, &mm);
	CHECK(bad == 0, "%s/%u copy 1: %llu bad pages, first %llu (expected step %lld, found %lld)",
	      wl_pattern_name(pattern), threads, (unsigned long long)bad, (unsigned long long)mm.page,
	      (long long)mm.expected_step, (long long)mm.found_step);
	/* A later copy against earlier counts must fail. */
	CHECK(count_bad(o, c2, npages, NULL) > 0, "copy 2 passed against the counts of copy 1");

	CHECK(wl_oracle_advance(o, s2) == 0, "advance 2");
	bad = count_bad(o, c2, npages, &mm);
	CHECK(bad == 0, "%s/%u copy 2: %llu bad pages, first %llu", wl_pattern_name(pattern),
	      threads, (unsigned long long)bad, (unsigned long long)mm.page);
	CHECK(wl_oracle_advance(o, s1) == -EINVAL, "going back in time accepted");
	if (c3) {
		CHECK(wl_oracle_advance(o, s3) == 0, "advance 3");
		bad = count_bad(o, c3, npages, &mm);
		CHECK(bad == 0, "%s/%u copy 3 (after restart): %llu bad pages, first %llu",
		      wl_pattern_name(pattern), threads, (unsigned long long)bad,
		      (unsigned long long)mm.page);

		/* A torn page: the last word of the page written last by thread 0
		 * still holds what it held before.  Find that page by replay. */
		struct pick ps;
		uint64_t dom = wl_domain(&cfg.params);
		pick_init(&ps, &cfg.params, dom, 0, s3[0] - 1);
		uint64_t pg = pick_next(&ps, s3[0] - 1) * threads;
		uint64_t *words = (uint64_t *)(void *)(c3 + pg * WL_PAGE);
		uint64_t saved = words[WORDS - 1];
		words[WORDS - 1] ^= 1;
		CHECK(!wl_oracle_check_page(o, pg, words, &mm), "torn page %llu passed",
		      (unsigned long long)pg);
		CHECK(mm.word == WORDS - 1 && mm.found_step == (int64_t)s3[0] - 1,
		      "mismatch report: word %u found step %lld", mm.word, (long long)mm.found_step);
		words[WORDS - 1] = saved;
		/* A page in the wrong place. */
		if (npages > pg + threads) {
			memcpy(c3 + pg * WL_PAGE, c3 + (pg + threads) * WL_PAGE, WL_PAGE);
			CHECK(!wl_oracle_check_page(o, pg, c3 + pg * WL_PAGE, NULL),
			      "misplaced page passed");
		}
		/* Zero records only match zero pages. */
		CHECK(!wl_oracle_check_zero(o, pg, NULL), "zero record accepted for written page");
		uint64_t cold = npages - 1;
		while (!wl_page_init_zero(&cfg.params, cold))
			cold--;
		CHECK(cold >= dom && wl_oracle_check_zero(o, cold, NULL),
		      "cold zero page %llu rejected", (unsigned long long)cold);
		free(c3);
	}
	(void)total;

	/* The blob round-trips. */
	uint8_t blob[32 + 8 * WL_MAX_THREADS];
	struct wl_params p2;
	uint64_t s4[WL_MAX_THREADS];
	wl_blob_encode(blob, &cfg.params, s2);
	CHECK(wl_blob_decode(blob, wl_blob_size(threads), &p2, s4) == 0 && p2.threads == threads &&
	      p2.seed == 42 && p2.pattern == pattern && p2.npages == npages &&
	      !memcmp(s2, s4, threads * 8), "blob round trip");
	CHECK(wl_blob_decode(blob, wl_blob_size(threads) - 1, &p2, s4) == -EBADMSG,
	      "short blob accepted");
	wl_oracle_destroy(o);
out:
	free(c1);
	free(c2);
	wl_destroy(w);
}

int main(void)
{
	for (int pat = 0; pat < 3; pat++)
		for (unsigned th = 1; th <= 4; th *= 2)
			one(pat, th);
	if (failures) {
		fprintf(stderr, "t_oracle: %d checks failed\n", failures);
		return 1;
	}
	printf("t_oracle: ok\n");
	return 0;
}
