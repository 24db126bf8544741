/*
 * t_format_crc32c - CRC-32C: the standard check value, hardware and table
 * paths equal over many lengths and alignments (including the 3-way
 * interleaved blocks), incremental == one shot, and crc32c_combine /
 * crc32c_combine_op equal to computing over the concatenation.
 */
#include <stdlib.h>
#include <string.h>

#include "format/crc32c.h"
#include "testutil.h"

int main(void)
{
	CHECK(crc32c(0, "123456789", 9) == 0xE3069283u, "check value 0x%08x", crc32c(0, "123456789", 9));
	CHECK(crc32c_sw(0, "123456789", 9) == 0xE3069283u, "table check value");
	CHECK(crc32c(0, NULL, 0) == 0, "empty");
	/* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA; 32 bytes 0xFF -> 0x62A8AB43. */
	uint8_t z[32] = { 0 }, f[32];
	memset(f, 0xff, sizeof(f));
	CHECK(crc32c(0, z, 32) == 0x8A9136AAu && crc32c(0, f, 32) == 0x62A8AB43u, "RFC 3720 vectors");

	size_t n = 64 << 10;
	uint8_t *b = malloc(n + 64);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < n + 64; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		b[i] = (uint8_t)x;
	}
	for (int k = 0; k < 3000; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t off = x % 64, len = k < 200 ? (size_t)k : (size_t)((x >> 8) % n);
		uint32_t hw = crc32c(0, b + off, len), sw = crc32c_sw(0, b + off, len);
		CHECK(hw == sw, "len %zu off %zu: hw 0x%08x sw 0x%08x", len, off, hw, sw);
		size_t cut = len ? (size_t)((x >> 20) % (len + 1)) : 0;
		uint32_t a = crc32c(0, b + off, cut), c = crc32c(0, b + off + cut, len - cut);
		CHECK(crc32c(a, b + off + cut, len - cut) == hw, "incremental, len %zu cut %zu", len, cut);
		CHECK(crc32c_combine(a, c, len - cut) == hw, "combine, len %zu cut %zu", len, cut);
		CHECK(crc32c_combine_op(a, c, crc32c_shift_op(len - cut)) == hw, "combine_op, len %zu", len);
	}
	printf("ok: crc32c (%s path) matches the table path and combines\n",
	       crc32c_hw_available() ? "SSE4.2" : "table");
	free(b);
	return 0;
}
