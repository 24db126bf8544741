/* values.h - the load driver's keys and values: key i is "key:%012d" (the
 * name redis-benchmark uses), generation g of its value starts
 * "key:%012d:g:" and is padded to the value size, so a checker can tell
 * every value that was ever written to a key from any other bytes. */
#ifndef KV_LOAD_VALUES_H
#define KV_LOAD_VALUES_H

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
	memset(buf, 'a' + gen, vsize);
	memcpy(buf, head, (size_t)n < vsize ? (size_t)n : vsize);
}

#endif
