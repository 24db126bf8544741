/*
 * crc32c.c - CRC-32C.  Hardware path: the SSE4.2 crc32 instruction, compiled
 * with a target attribute so the rest of the library stays baseline x86-64,
 * chosen once at run time by cpuid; to hide the instruction's 3-cycle
 * latency, long buffers are split into three independent streams whose
 * results are merged with precomputed shift tables.  Fallback: slicing-by-8
 * tables.  Both compute the same function (tests compare them).
 */
#include "format/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t sw_table[8][256];
static int use_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Product of two polynomials modulo POLY, both in reflected form (bit 31 is
 * x^0).  Used to move a crc across a run of bytes it did not see. */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
	uint32_t p = 0;
	for (uint32_t m = 1u << 31; m; m >>= 1) {
		if (a & m)
			p ^= b;
		b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
	}
	return p;
}

/* x^(8*n) mod POLY: the operator "append n zero bytes" on a raw register. */
static uint32_t x8n(uint64_t n)
{
	uint32_t r = 1u << 31;          /* x^0 */
	uint32_t sq = 1u << 23;         /* x^8: one byte */
	while (n) {
		if (n & 1)
			r = gf_mul(r, sq);
		sq = gf_mul(sq, sq);
		n >>= 1;
	}
	return r;
}

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	return gf_mul(crc_a, x8n(len_b)) ^ crc_b;
}

uint32_t crc32c_shift_op(uint64_t len_b)
{
	return x8n(len_b);
}

uint32_t crc32c_combine_op(uint32_t crc_a, uint32_t crc_b, uint32_t op)
{
	return gf_mul(crc_a, op) ^ crc_b;
}

#if defined(__x86_64__)
#define HW_BLOCK 1024u  /* bytes per stream in the 3-way loop */
/* shift_tab[k][b]: the raw register contribution of byte b at position k of a
 * 32-bit value, shifted across 2*HW_BLOCK (table 0) or HW_BLOCK (table 1)
 * bytes; turns the merge of three streams into 8 table lookups. */
static uint32_t shift_tab[2][4][256];

static void init_shift_tables(void)
{
	uint32_t s[2] = { x8n(2 * HW_BLOCK), x8n(HW_BLOCK) };
	for (int t = 0; t < 2; t++)
		for (int k = 0; k < 4; k++)
			for (uint32_t b = 0; b < 256; b++)
				shift_tab[t][k][b] = gf_mul(b << (8 * k), s[t]);
}

static inline uint32_t shift_by(int t, uint32_t v)
{
	return shift_tab[t][0][v & 0xff] ^ shift_tab[t][1][(v >> 8) & 0xff] ^
	       shift_tab[t][2][(v >> 16) & 0xff] ^ shift_tab[t][3][v >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;   /* raw register */
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 3 * HW_BLOCK) {
		uint64_t c1 = 0, c2 = 0;
		const unsigned char *p1 = p + HW_BLOCK, *p2 = p + 2 * HW_BLOCK;
		for (size_t i = 0; i < HW_BLOCK; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p1 + i, 8);
			memcpy(&w2, p2 + i, 8);
			c = __builtin_ia32_crc32di(c, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		/* The raw register is linear: shift c over 2 blocks, c1 over 1. */
		c = shift_by(0, (uint32_t)c) ^ shift_by(1, (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * HW_BLOCK;
		len -= 3 * HW_BLOCK;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		sw_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			sw_table[t][i] = (sw_table[t - 1][i] >> 8) ^ sw_table[0][sw_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		init_shift_tables();
		use_hw = 1;
	}
#endif
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&init_once, crc32c_init);
	const unsigned char *p = buf;
	uint32_t c = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ sw_table[0][(c ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		                   (uint32_t)p[3] << 24);
		c = sw_table[7][lo & 0xff] ^ sw_table[6][(lo >> 8) & 0xff] ^
		    sw_table[5][(lo >> 16) & 0xff] ^ sw_table[4][lo >> 24] ^
		    sw_table[3][p[4]] ^ sw_table[2][p[5]] ^ sw_table[1][p[6]] ^ sw_table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ sw_table[0][(c ^ *p++) & 0xff];
	return ~c;
}

int crc32c_hw_available(void)
{
	pthread_once(&init_once, crc32c_init);
	return use_hw;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&init_once, crc32c_init);
#if defined(__x86_64__)
	if (use_hw)
		return crc32c_hw(crc, buf, len);
#endif
	return crc32c_sw(crc, buf, len);
}
