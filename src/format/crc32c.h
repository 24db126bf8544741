/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial
 * value and final xor 0xFFFFFFFF), the checksum of every snapshot record and
 * of the whole file.  crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef BGSNAP_CRC32C_H
#define BGSNAP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 for an empty prefix) over `len` bytes: crc32c(crc32c(0,A),B)
 * == crc32c(0, A||B).  Uses the SSE4.2 crc32 instruction when the CPU has it. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable table implementation (same results); exposed for tests. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* crc32c of A||B from crc_a = crc32c(0,A), crc_b = crc32c(0,B) and len_b =
 * |B|, without touching the bytes: lets the writer keep the whole-file
 * checksum without a second pass over page data. */
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* The same in two steps, for many combines across the same length: op =
 * crc32c_shift_op(len_b) once, then crc32c_combine_op(crc_a, crc_b, op). */
uint32_t crc32c_shift_op(uint64_t len_b);
uint32_t crc32c_combine_op(uint32_t crc_a, uint32_t crc_b, uint32_t op);

/* 1 if the hardware path is in use. */
int crc32c_hw_available(void);

#endif
