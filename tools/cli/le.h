/*
 * le.h - little-endian fields in byte buffers, for the files and blobs the
 * tools write and read themselves (ELF cores, the bench's state blob):
 * unaligned, and the same bytes on any host.
 */
#ifndef BGSNAP_TOOLS_LE_H
#define BGSNAP_TOOLS_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void put_le16(void *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline uint32_t get_le32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get_le64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

#endif
