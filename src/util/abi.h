/*
 * abi.h - how the public API copies a struct out to a caller whose struct
 * may be a different size (an older or newer bgsnap.h): the bytes both know,
 * then zeros for the fields this library does not fill.
 */
#ifndef BGSNAP_ABI_H
#define BGSNAP_ABI_H

#include <stddef.h>
#include <string.h>

static inline void abi_copy_out(void *dst, size_t dst_size, const void *src, size_t src_size)
{
	size_t n = dst_size < src_size ? dst_size : src_size;
	memcpy(dst, src, n);
	if (dst_size > n)
		memset((char *)dst + n, 0, dst_size - n);
}

#endif
