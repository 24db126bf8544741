/*
 * elf_core.c - writes a snapshot as an ELF64 core (layout in elf_core.h).
 *
 * Every field goes through the little-endian helpers; no ELF struct from
 * <elf.h> is cast onto the bytes.  Pages come from the reader (checksums
 * checked) and only non-zero pages are written, after the file was sized
 * with ftruncate, so zero pages stay holes.  The file is written under its
 * final name, created 0600 (it holds someone's memory), fsynced, and
 * unlinked again if anything fails.
 */
#include "elf_core.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/le.h"

#define PAGE        4096u
#define EHDR_LEN    64u
#define PHDR_LEN    56u
#define PRSTATUS_LEN 336u   /* struct elf_prstatus on x86-64          */
#define PRSTATUS_PID 32u    /* offset of pr_pid in it                 */
#define RUN_PAGES   256u    /* pages gathered per pwrite              */

typedef unsigned long long ull;

static int fail(char *err, size_t len, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

static uint64_t pad4(uint64_t n)
{
	return (n + 3) & ~UINT64_C(3);
}

static void store16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Appends one note (owner BGSNAP or CORE) to buf at *at; buf==NULL counts. */
static void note(uint8_t *buf, uint64_t *at, const char *owner, uint32_t type, const void *d1, uint64_t l1,
                 const void *d2, uint64_t l2, const void *d3, uint64_t l3)
{
	uint32_t namesz = (uint32_t)strlen(owner) + 1;
	uint64_t descsz = l1 + l2 + l3;
	if (buf) {
		uint8_t *p = buf + *at;
		le32_store(p, namesz);
		le32_store(p + 4, (uint32_t)descsz);
		le32_store(p + 8, type);
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
	le32_store(prs + PRSTATUS_PID, 1);
	note(buf, &at, "CORE", NT_PRSTATUS, prs, sizeof(prs), NULL, 0, NULL, 0);
	for (unsigned i = 0; i < fi->region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		uint8_t h[20];
		le64_store(h, ri.addr);
		le64_store(h + 8, ri.size);
		le32_store(h + 16, (uint32_t)strlen(ri.name));
		note(buf, &at, ELF_CORE_NOTE_OWNER, ELF_CORE_NOTE_REGION, h, sizeof(h), ri.name, strlen(ri.name), NULL, 0);
	}
	for (unsigned i = 0; i < fi->state_count; i++) {
		const char *name;
		const void *data;
		size_t len;
		if (bgsnap_reader_state(r, i, &name, &data, &len) < 0)
			continue;
		uint8_t h[4];
		le32_store(h, (uint32_t)strlen(name));
		note(buf, &at, ELF_CORE_NOTE_OWNER, ELF_CORE_NOTE_STATE, h, sizeof(h), name, strlen(name), data, len);
	}
	return at;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static int is_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && !memcmp(p, p + 1, n - 1);
}

/* Region idx's pages at file offset `off`, non-zero runs only. */
static int write_region(bgsnap_reader *r, unsigned idx, uint64_t pages, int fd, uint64_t off, uint8_t *buf,
                        struct elf_core_stats *st, const char *out, char *err, size_t err_len)
{
	uint64_t run_first = 0, run_len = 0;
	for (uint64_t p = 0; p < pages; p++) {
		uint8_t *dst = buf + run_len * PAGE;
		int rc = bgsnap_reader_read_page(r, idx, p, dst);
		if (rc < 0)
			return fail(err, err_len, rc, "%s", bgsnap_reader_errmsg(r));
		int z = is_zero(dst, PAGE);
		if (z) {
			st->zero_pages++;
		} else {
			if (!run_len)
				run_first = p;
			run_len++;
			st->data_pages++;
		}
		if (run_len && (z || run_len == RUN_PAGES || p + 1 == pages)) {
			if ((rc = pwrite_all(fd, buf, (size_t)(run_len * PAGE), off + run_first * PAGE)) < 0)
				return fail(err, err_len, rc, "writing %s: %s", out, strerror(-rc));
			run_len = 0;
		}
	}
	return 0;
}

int elf_core_write(bgsnap_reader *r, const char *out, struct elf_core_stats *st, char *err, size_t err_len)
{
	struct bgsnap_file_info fi;
	bgsnap_reader_info(r, &fi, sizeof fi);
	memset(st, 0, sizeof(*st));
	if (fi.page_size != PAGE)
		return fail(err, err_len, -EINVAL, "page size %u not supported", fi.page_size);
	if (fi.region_count + 1 >= PN_XNUM)
		return fail(err, err_len, -E2BIG, "%u regions: more than an ELF header can count", fi.region_count);
	uint64_t nph = 1 + fi.region_count;
	uint64_t notes_off = EHDR_LEN + nph * PHDR_LEN;
	uint64_t notes_len = build_notes(r, &fi, NULL);
	uint8_t *head = calloc(1, notes_off + notes_len);
	uint8_t *buf = malloc((size_t)RUN_PAGES * PAGE);
	if (!head || !buf) {
		free(head);
		free(buf);
		return fail(err, err_len, -ENOMEM, "out of memory");
	}
	build_notes(r, &fi, head + notes_off);

	/* ELF header. */
	uint8_t *e = head;
	memcpy(e, ELFMAG, SELFMAG);
	e[EI_CLASS] = ELFCLASS64;
	e[EI_DATA] = ELFDATA2LSB;
	e[EI_VERSION] = EV_CURRENT;
	e[EI_OSABI] = ELFOSABI_NONE;
	store16(e + 16, ET_CORE);
	store16(e + 18, EM_X86_64);
	le32_store(e + 20, EV_CURRENT);
	le64_store(e + 24, 0);                /* e_entry */
	le64_store(e + 32, EHDR_LEN);         /* e_phoff */
	le64_store(e + 40, 0);                /* e_shoff */
	le32_store(e + 48, 0);                /* e_flags */
	store16(e + 52, EHDR_LEN);
	store16(e + 54, PHDR_LEN);
	store16(e + 56, (uint16_t)nph);
	store16(e + 58, 0);                   /* e_shentsize */
	store16(e + 60, 0);                   /* e_shnum */
	store16(e + 62, 0);                   /* e_shstrndx */

	/* Program headers: the note, then the regions at page-aligned offsets. */
	uint8_t *ph = head + EHDR_LEN;
	le32_store(ph, PT_NOTE);
	le32_store(ph + 4, 0);
	le64_store(ph + 8, notes_off);
	le64_store(ph + 16, 0);
	le64_store(ph + 24, 0);
	le64_store(ph + 32, notes_len);
	le64_store(ph + 40, 0);
	le64_store(ph + 48, 4);
	uint64_t off = (notes_off + notes_len + PAGE - 1) / PAGE * PAGE;
	uint64_t *offs = calloc(fi.region_count ? fi.region_count : 1, sizeof(*offs));
	if (!offs) {
		free(head);
		free(buf);
		return fail(err, err_len, -ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < fi.region_count; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		uint8_t *p = ph + (1 + i) * PHDR_LEN;
		offs[i] = off;
		le32_store(p, PT_LOAD);
		le32_store(p + 4, PF_R | PF_W);
		le64_store(p + 8, off);
		le64_store(p + 16, ri.addr);
		le64_store(p + 24, 0);
		le64_store(p + 32, ri.size);
		le64_store(p + 40, ri.size);
		le64_store(p + 48, PAGE);
		off += ri.size;
	}

	int rc = 0;
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = fail(err, err_len, -errno, "%s: %s", out, strerror(errno));
		goto done;
	}
	/* An existing OUT keeps its mode across O_TRUNC: make it private too. */
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)off) < 0) {
		rc = fail(err, err_len, -errno, "%s: %s", out, strerror(errno));
		goto done;
	}
	if ((rc = pwrite_all(fd, head, (size_t)(notes_off + notes_len), 0)) < 0) {
		rc = fail(err, err_len, rc, "writing %s: %s", out, strerror(-rc));
		goto done;
	}
	for (unsigned i = 0; i < fi.region_count && rc == 0; i++) {
		struct bgsnap_region_info ri;
		bgsnap_reader_region(r, i, &ri, sizeof ri);
		rc = write_region(r, i, ri.size / PAGE, fd, offs[i], buf, st, out, err, err_len);
	}
	if (rc == 0 && fsync(fd) < 0 && errno != EINVAL)
		rc = fail(err, err_len, -errno, "fsync %s: %s", out, strerror(errno));
	st->file_bytes = off;
done:
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = fail(err, err_len, -errno, "closing %s: %s", out, strerror(errno));
	if (fd >= 0 && rc < 0)
		unlink(out);   /* no half core left behind */
	free(offs);
	free(head);
	free(buf);
	return rc;
}
