/*
 * elf_core.c - writes a snapshot as an ELF64 core (layout in elf_core.h).
 *
 * Every field goes through the little-endian helpers; no ELF struct from
 * <elf.h> is cast onto the bytes.  The regions' pages are written by
 * image.c: through the reader (checksums checked), non-zero pages only, zero
 * runs as holes, into a temporary created 0600 and sized first, renamed
 * over the output when complete (image_file.c).
 */
#include "elf_core.h"

#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/le.h"

#define PAGE        4096u
#define EHDR_LEN    64u
#define PHDR_LEN    56u
#define PRSTATUS_LEN 336u   /* struct elf_prstatus on x86-64          */
#define PRSTATUS_PID 32u    /* offset of pr_pid in it                 */

static uint64_t pad4(uint64_t n)
{
	return (n + 3) & ~UINT64_C(3);
}

/* Appends one note (owner BGSNAP or CORE) to buf at *at; buf==NULL counts.
 * Its description is the concatenation of up to three pieces. */
static void note(uint8_t *buf, uint64_t *at, const char *owner, uint32_t type, const void *d1, uint64_t l1,
                 const void *d2, uint64_t l2, const void *d3, uint64_t l3)
{
	uint32_t namesz = (uint32_t)strlen(owner) + 1;
	uint64_t descsz = l1 + l2 + l3;
	if (buf) {
		uint8_t *p = buf + *at;
		put_le32(p, namesz);
		put_le32(p + 4, (uint32_t)descsz);
		put_le32(p + 8, type);
		memcpy(p + 12, owner, namesz);
		uint8_t *d = p + 12 + pad4(namesz);
		if (l1)
			memcpy(d, d1, l1);
		if (l2)
			memcpy(d + l1, d2, l2);
		if (l3)
			memcpy(d + l1 + l2, d3, l3);
	}
	*at += 12 + pad4(namesz) + pad4(descsz);
}

/* All notes into buf (NULL: only the size). */
static uint64_t build_notes(bgsnap_reader *r, const struct bgsnap_file_info *fi, uint8_t *buf)
{
	uint64_t at = 0;
	uint8_t prs[PRSTATUS_LEN];
	memset(prs, 0, sizeof(prs));
	put_le32(prs + PRSTATUS_PID, 1);
	note(buf, &at, "CORE", NT_PRSTATUS, prs, sizeof(prs), NULL, 0, NULL, 0);
	for (unsigned i = 0; i < fi->region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		uint8_t h[20];
		put_le64(h, ri.addr);
		put_le64(h + 8, ri.size);
		put_le32(h + 16, (uint32_t)strlen(ri.name));
		note(buf, &at, ELF_CORE_NOTE_OWNER, ELF_CORE_NOTE_REGION, h, sizeof(h), ri.name, strlen(ri.name), NULL, 0);
	}
	for (unsigned i = 0; i < fi->state_count; i++) {
		const char *name;
		const void *data;
		size_t len;
		if (bgsnap_reader_state(r, i, &name, &data, &len) < 0)
			continue;
		uint8_t h[4];
		put_le32(h, (uint32_t)strlen(name));
		note(buf, &at, ELF_CORE_NOTE_OWNER, ELF_CORE_NOTE_STATE, h, sizeof(h), name, strlen(name), data, len);
	}
	return at;
}

static void elf_header(uint8_t *e, uint16_t nph)
{
	memcpy(e, ELFMAG, SELFMAG);
	e[EI_CLASS] = ELFCLASS64;
	e[EI_DATA] = ELFDATA2LSB;
	e[EI_VERSION] = EV_CURRENT;
	e[EI_OSABI] = ELFOSABI_NONE;
	put_le16(e + 16, ET_CORE);
	put_le16(e + 18, EM_X86_64);
	put_le32(e + 20, EV_CURRENT);
	put_le64(e + 24, 0);                /* e_entry */
	put_le64(e + 32, EHDR_LEN);         /* e_phoff */
	put_le64(e + 40, 0);                /* e_shoff */
	put_le32(e + 48, 0);                /* e_flags */
	put_le16(e + 52, EHDR_LEN);
	put_le16(e + 54, PHDR_LEN);
	put_le16(e + 56, nph);
	put_le16(e + 58, 0);                /* e_shentsize */
	put_le16(e + 60, 0);                /* e_shnum */
	put_le16(e + 62, 0);                /* e_shstrndx */
}

static void program_header(uint8_t *p, uint32_t type, uint32_t flags, uint64_t off, uint64_t vaddr,
                           uint64_t size, uint64_t align)
{
	put_le32(p, type);
	put_le32(p + 4, flags);
	put_le64(p + 8, off);
	put_le64(p + 16, vaddr);
	put_le64(p + 24, 0);                /* p_paddr */
	put_le64(p + 32, size);             /* p_filesz */
	put_le64(p + 40, type == PT_LOAD ? size : 0);   /* p_memsz */
	put_le64(p + 48, align);
}

/*
 * The program headers: the note, then one PT_LOAD per region at
 * page-aligned offsets from `off` on (stored in offs[]).  Returns the file
 * size.
 */
static uint64_t program_headers(bgsnap_reader *r, unsigned nregions, uint8_t *ph, uint64_t notes_off,
                                uint64_t notes_len, uint64_t *offs)
{
	program_header(ph, PT_NOTE, 0, notes_off, 0, notes_len, 4);
	uint64_t off = (notes_off + notes_len + PAGE - 1) / PAGE * PAGE;
	for (unsigned i = 0; i < nregions; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		offs[i] = off;
		program_header(ph + (1 + i) * PHDR_LEN, PT_LOAD, PF_R | PF_W, off, ri.addr, ri.size, PAGE);
		off += ri.size;
	}
	return off;
}

int elf_core_write(bgsnap_reader *r, const struct image_target *t, struct elf_core_stats *st, char *err,
                   size_t err_len)
{
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	memset(st, 0, sizeof(*st));
	st->pages.bar = t->bar;
	if (fi.page_size != PAGE)
		return cli_fail(err, err_len, -EINVAL, "page size %u not supported", fi.page_size);
	if (fi.region_count + 1 >= PN_XNUM)
		return cli_fail(err, err_len, -E2BIG, "%u regions: more than an ELF header can count", fi.region_count);
	uint64_t nph = 1 + fi.region_count;
	uint64_t notes_off = EHDR_LEN + nph * PHDR_LEN;
	uint64_t notes_len = build_notes(r, &fi, NULL);
	uint8_t *head = calloc(1, notes_off + notes_len);
	uint64_t *offs = calloc(fi.region_count ? fi.region_count : 1, sizeof(*offs));
	if (!head || !offs) {
		free(head);
		free(offs);
		return cli_fail(err, err_len, -ENOMEM, "out of memory");
	}
	build_notes(r, &fi, head + notes_off);
	elf_header(head, (uint16_t)nph);
	uint64_t size = program_headers(r, fi.region_count, head + EHDR_LEN, notes_off, notes_len, offs);

	struct image_out o;
	int rc = image_create(&o, t, size, err, err_len);
	if (rc < 0)
		goto done;
	if ((rc = image_pwrite(o.fd, head, (size_t)(notes_off + notes_len), 0)) < 0)
		rc = cli_fail(err, err_len, rc, "writing %s: %s", t->path, strerror(-rc));
	for (unsigned i = 0; i < fi.region_count && rc == 0; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		rc = image_write_region(r, i, ri.size / PAGE, PAGE, o.fd, offs[i], &st->pages, t->path, err, err_len);
	}
	rc = image_finish(&o, rc, err, err_len);
	st->file_bytes = size;
done:
	free(offs);
	free(head);
	return rc;
}
