/*
 * t_copybuf - the fault copy buffer hands every published page to the writer
 * exactly once, with the content and the (region, page) it was published
 * with, never holds more than its capacity, and take() honours its `max`
 * (the rest stays ready for the next call).  Once single-threaded, with
 * slots published out of order across bitmap words and a capacity that is
 * not a multiple of 64; then with four producers against one consumer on a
 * buffer small enough that the producers wait for slots (back-pressure).
 *
 * tags: concurrency
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/copybuf.h"
#include "testutil.h"

#define SLOTS 130u       /* two full bitmap words and two slots */
#define PRODUCERS 4u
#define PER_PRODUCER 20000u

/* No slot is left marked ready. */
static void check_no_ready(struct copybuf *cb, const char *when)
{
	for (uint32_t w = 0; w < cb->nwords; w++)
		CHECK(atomic_load(&cb->ready[w]) == 0, "ready bits 0x%llx left in word %u %s",
		      (unsigned long long)atomic_load(&cb->ready[w]), w, when);
}

static void single_thread(void)
{
	struct copybuf cb;
	CHECK_RC(copybuf_init(&cb, SLOTS * TU_PAGE), 0, "init of %u slots", SLOTS);
	uint32_t slots[SLOTS];
	uint8_t got[SLOTS] = { 0 };
	for (uint32_t i = 0; i < SLOTS; i++) {
		uint8_t *m = copybuf_get(&cb, &slots[i]);
		CHECK(m != NULL && slots[i] < SLOTS, "get %u returned slot %u", i, slots[i]);
		CHECK(!got[slots[i]], "slot %u handed out twice", slots[i]);
		got[slots[i]] = 1;
		memset(m, (int)(slots[i] & 0xff), TU_PAGE);
	}
	/* Publish from the last slot down, so the ready bits of every word are
	 * set out of the order take() scans them in. */
	for (uint32_t i = SLOTS; i-- > 0;)
		copybuf_put(&cb, slots[i] % 3, 1000 + slots[i], slots[i]);
	memset(got, 0, sizeof(got));
	uint32_t total = 0;
	for (int calls = 0; total < SLOTS; calls++) {
		CHECK(calls < 100, "only %u of %u ready slots taken after 100 calls", total, SLOTS);
		struct copybuf_item it[7];
		uint32_t n = copybuf_take(&cb, it, 7, 0);
		CHECK(n == (SLOTS - total < 7 ? SLOTS - total : 7), "take(max 7) returned %u with %u ready", n,
		      SLOTS - total);
		for (uint32_t k = 0; k < n; k++) {
			uint32_t s = it[k].slot;
			CHECK(s < SLOTS && !got[s], "slot %u taken twice or out of range", s);
			got[s] = 1;
			CHECK(it[k].region == s % 3 && it[k].page == 1000 + s, "slot %u: region %u page %llu", s,
			      it[k].region, (unsigned long long)it[k].page);
			const uint8_t *m = copybuf_slot(&cb, s);
			CHECK(m[0] == (s & 0xff) && m[TU_PAGE - 1] == (s & 0xff), "slot %u content changed", s);
		}
		copybuf_release(&cb, it, n);
		total += n;
	}
	check_no_ready(&cb, "after every slot was taken");
	CHECK(copybuf_peak(&cb) == SLOTS, "peak %u, expected %u", copybuf_peak(&cb), SLOTS);
	/* Every slot is free again. */
	uint32_t s;
	for (uint32_t i = 0; i < SLOTS; i++)
		CHECK(copybuf_get(&cb, &s) != NULL, "slot %u of %u not free after release", i, SLOTS);
	copybuf_destroy(&cb);
}

struct producer {
	struct copybuf *cb;
	uint32_t id;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (uint32_t i = 0; i < PER_PRODUCER; i++) {
		uint32_t slot;
		uint64_t *m = copybuf_get(p->cb, &slot);
		if (!m)
			return (void *)1;
		uint64_t page = (uint64_t)p->id * PER_PRODUCER + i;
		for (size_t w = 0; w < TU_PAGE / 8; w += 64)
			m[w] = page * 7919 + w;
		copybuf_put(p->cb, p->id, page, slot);
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void concurrent(void)
{
	struct copybuf cb;
	CHECK_RC(copybuf_init(&cb, 70 * TU_PAGE), 0, "init");
	struct producer ps[PRODUCERS];
	pthread_t th[PRODUCERS];
	for (uint32_t i = 0; i < PRODUCERS; i++) {
		ps[i] = (struct producer){ &cb, i };
		CHECK(pthread_create(&th[i], NULL, produce, &ps[i]) == 0, "pthread_create");
	}
	uint32_t want = PRODUCERS * PER_PRODUCER, total = 0;
	uint8_t *seen = calloc(want, 1);
	CHECK(seen != NULL, "calloc");
	uint64_t x = 88172645463325252ull;
	double deadline = now_s() + 60;
	while (total < want) {
		if (now_s() > deadline) {
			copybuf_close(&cb);
			FAIL("after 60 s only %u of %u published pages reached the consumer", total, want);
		}
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		struct copybuf_item it[64];
		uint32_t n = copybuf_take(&cb, it, 1 + (uint32_t)(x % 64), 10);
		for (uint32_t k = 0; k < n; k++) {
			uint64_t page = it[k].page;
			CHECK(page < want && it[k].region == page / PER_PRODUCER, "item: region %u page %llu",
			      it[k].region, (unsigned long long)page);
			CHECK(!seen[page], "page %llu delivered twice", (unsigned long long)page);
			seen[page] = 1;
			const uint64_t *m = copybuf_slot(&cb, it[k].slot);
			for (size_t w = 0; w < TU_PAGE / 8; w += 64)
				CHECK(m[w] == page * 7919 + w, "page %llu: slot %u holds another page's bytes",
				      (unsigned long long)page, it[k].slot);
		}
		copybuf_release(&cb, it, n);
		total += n;
	}
	for (uint32_t i = 0; i < PRODUCERS; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		CHECK(rv == NULL, "producer %u saw the buffer closed", i);
	}
	CHECK(copybuf_peak(&cb) <= 70, "peak %u slots in use, capacity 70", copybuf_peak(&cb));
	check_no_ready(&cb, "after every page arrived");
	free(seen);
	copybuf_destroy(&cb);
}

int main(void)
{
	single_thread();
	concurrent();
	printf("copybuf: %u slots out of order, %u pages from %u producers through 70 slots: each once\n", SLOTS,
	       PRODUCERS * PER_PRODUCER, PRODUCERS);
	return 0;
}
