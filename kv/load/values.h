/* values.h - the load driver's keys and values: key i is "key:%012d" (the
 * name redis-benchmark uses), generation g of its value starts
 * "key:%012d:g:" and is padded to the value size with letters drawn from
 * (i, g), so a checker can tell every value ever written to a key from any
 * other bytes, and the data does not compress to nothing (as runs of one
 * byte would, flattering a compressing format). */
#ifndef KV_LOAD_VALUES_H
#define KV_LOAD_VALUES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline size_t key_name(char *buf, size_t cap, long long i)
{
	return (size_t)snprintf(buf, cap, "key:%012lld", i);
}

static inline void value_of(char *buf, size_t vsize, long long i, int gen)
{
	char head[48];
	int n = snprintf(head, sizeof(head), "key:%012lld:%d:", i, gen);
	uint64_t x = ((uint64_t)i << 1 | (uint64_t)gen) * 0x9e3779b97f4a7c15ull + 1;
	for (size_t k = 0; k < vsize; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[k] = (char)('a' + (x >> 32) % 26);
	}
	memcpy(buf, head, (size_t)n < vsize ? (size_t)n : vsize);
}

#endif
