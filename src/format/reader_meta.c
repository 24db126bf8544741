/*
 * reader_meta.c - what a reader tells its callers about the snapshot: the
 * file's summary, its regions and its state blobs.
 */
#include <errno.h>
#include <string.h>

#include "format/reader_int.h"

/* Copies min(out_size, len) bytes of the library's struct and zero-fills
 * the rest of the caller's, so that either side may be the newer one. */
static void copy_sized(void *out, size_t out_size, const void *src, size_t len)
{
	size_t n = out_size < len ? out_size : len;
	memcpy(out, src, n);
	memset((char *)out + n, 0, out_size - n);
}

int bgsnap_reader_info(const bgsnap_reader *r, struct bgsnap_file_info *out, size_t out_size)
{
	if (!r || !out)
		return -EINVAL;
	struct bgsnap_file_info fi = {
		.version = r->version,
		.page_size = r->page_size,
		.region_count = r->region_count,
		.pages_total = r->pages_total,
		.compress = r->version == FMT_VERSION_CPAGES ? BGSNAP_COMPRESS_ZSTD : BGSNAP_COMPRESS_NONE,
		.parent_file_crc = r->parent_file_crc,
		.depth = r->depth,
		.incremental = r->incremental,
		.page_aligned = r->aligned,
	};
	memcpy(fi.id, r->id, sizeof(fi.id));
	memcpy(fi.parent_id, r->parent_id, sizeof(fi.parent_id));
	if (r->have_trailer) {
		fi.state_count = r->state_count;
		fi.method = (int)r->method;
		fi.created_unix_ns = r->created_ns;
		fi.pages_zero = r->pages_zero;
		fi.pause_us = r->pause_us;
		fi.file_bytes = r->file_size;
		fi.index_offset = r->index_offset;
		/* A stream has no index in memory, but after END the records it
		 * saw are exactly the index's entries (checked one by one). */
		const struct run *v = r->stream ? r->seq.seen : r->index;
		size_t n = r->stream ? r->seq.nseen : r->nindex;
		fi.records = n;
		fi.stored_bytes = r->stored_bytes;
		/* The pages this file holds: an incremental one holds some. */
		for (size_t i = 0; i < n; i++) {
			if (v[i].kind == FMT_REC_PAGES || v[i].kind == FMT_REC_CPAGES)
				fi.raw_bytes += v[i].count * r->page_size;
			fi.cpage_records += v[i].kind == FMT_REC_CPAGES;
			fi.page_records += v[i].kind == FMT_REC_PAGES;
			fi.zero_records += v[i].kind == FMT_REC_ZERO;
			fi.state_records += v[i].kind == FMT_REC_STATE;
			fi.pad_records += v[i].kind == FMT_REC_PAD;
		}
		fi.records -= fi.pad_records;
		/* Version 3 allows CPAGES either way: what the records hold. */
		if (fi.cpage_records)
			fi.compress = BGSNAP_COMPRESS_ZSTD;
	}
	copy_sized(out, out_size, &fi, sizeof(fi));
	return 0;
}

int bgsnap_reader_region(const bgsnap_reader *r, unsigned idx, struct bgsnap_region_info *out,
                         size_t out_size)
{
	if (!r || !out)
		return -EINVAL;
	if (idx >= r->region_count)
		return -ENOENT;
	const struct rregion *g = &r->regions[idx];
	struct bgsnap_region_info ri = {
		.name = g->name,
		.addr = g->addr,
		.size = g->size,
		.pages_zero = r->have_trailer ? g->zero_pages : 0,
	};
	copy_sized(out, out_size, &ri, sizeof(ri));
	return 0;
}

int bgsnap_reader_find_region(const bgsnap_reader *r, const char *name)
{
	for (uint32_t i = 0; i < r->region_count; i++)
		if (!strcmp(r->regions[i].name, name))
			return (int)i;
	return -ENOENT;
}

int bgsnap_reader_state(const bgsnap_reader *r, unsigned idx, const char **name, const void **data,
                        size_t *len)
{
	if (!r->have_trailer || idx >= r->nstates)
		return -ENOENT;
	if (name)
		*name = r->states[idx].name;
	if (data)
		*data = r->states[idx].data;
	if (len)
		*len = r->states[idx].len;
	return 0;
}

int bgsnap_reader_find_state(const bgsnap_reader *r, const char *name, const void **data, size_t *len)
{
	if (!r->have_trailer)
		return -ENOENT;
	for (size_t i = 0; i < r->nstates; i++)
		if (!strcmp(r->states[i].name, name))
			return bgsnap_reader_state(r, (unsigned)i, NULL, data, len);
	return -ENOENT;
}
