/*
 * elf_core.h - a snapshot as an ELF64 core file (`bgsnap extract --elf`), so
 * that readelf, gdb and other core-file tools read the snapshot's memory at
 * its original addresses.
 *
 * Layout (little-endian, x86-64):
 *   ELF header (ET_CORE, EM_X86_64)
 *   program headers: one PT_NOTE, then one PT_LOAD per region in region
 *     order: p_vaddr = the region's address, p_filesz = p_memsz = its size,
 *     p_flags = PF_R|PF_W, p_align = 4096, p_offset page-aligned
 *   the notes (4-byte aligned, owner "BGSNAP"):
 *     type 0x4252 ('B','R') per region: u64 addr, u64 size, u32 name_len, name
 *     type 0x4247 ('B','G') per state blob: u32 name_len, name, data
 *     (desc padded with zeros to a multiple of 4; name_len excludes padding)
 *     plus one NT_PRSTATUS with zero registers, because gdb wants a thread
 *   the regions' bytes, each at its PT_LOAD offset.  The file is sparse:
 *   zero pages are holes (never written).
 */
#ifndef BGSNAP_ELF_CORE_H
#define BGSNAP_ELF_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "bgsnap.h"
#include "image.h"

#define ELF_CORE_NOTE_OWNER  "BGSNAP"
#define ELF_CORE_NOTE_STATE  0x4247u
#define ELF_CORE_NOTE_REGION 0x4252u

struct elf_core_stats {
	uint64_t file_bytes;        /* size of the core file                 */
	struct image_stats pages;   /* pages written and left as holes       */
};

/*
 * Writes the snapshot read by `r` (random access) as an ELF core to t->path
 * (built and committed as image.h says: 0600, never the input, refused
 * beyond the free space unless forced).  Every data page is read through
 * the reader, so checksums are checked.  Returns 0, or -errno with a
 * message in err.
 */
int elf_core_write(bgsnap_reader *r, const struct image_target *t, struct elf_core_stats *st, char *err,
                   size_t err_len);

#endif
