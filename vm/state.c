/* state.c - the VM's state blobs, written and read (format in state.h). */
#include "state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/text.h"

#define BLOB_MAX 4096

static const char cpu_magic[] = "bgsnap-vm cpu 1\n";
static const char console_magic[] = "bgsnap-vm console 1\n";
static const char machine_magic[] = "bgsnap-vm machine 1\n";

/* ---- writing ---- */

static int put(bgsnap_state *st, const char *name, const struct cli_text *t)
{
	return t->full ? -ENOSPC : bgsnap_state_add(st, name, t->buf, t->len);
}

static int save_cpu(bgsnap_state *st, struct vm *vm)
{
	char buf[BLOB_MAX];
	struct cli_text t = CLI_TEXT(buf);
	cli_text_add(&t, "%s", cpu_magic);
	for (unsigned i = 0; i < vm_reg_count(); i++) {
		uint64_t v[2];
		if (vm_reg_read(vm, i, v) < 0)
			return -EIO;
		if (vm_reg_bytes(i) == 16)
			cli_text_add(&t, "%s=0x%016" PRIx64 "%016" PRIx64 "\n", vm_reg_name(i), v[1], v[0]);
		else
			cli_text_add(&t, "%s=0x%" PRIx64 "\n", vm_reg_name(i), v[0]);
	}
	return put(st, "cpu", &t);
}

int vm_state_save(bgsnap_state *st, struct vm *vm, const char *guest)
{
	int e = save_cpu(st, vm);
	if (e < 0)
		return e;
	char buf[BLOB_MAX];
	struct cli_text t = CLI_TEXT(buf);
	cli_text_add(&t, "%sbytes=0x%" PRIx64 "\n", console_magic, vm->console_bytes);
	if ((e = put(st, "console", &t)) < 0)
		return e;
	t = CLI_TEXT(buf);
	cli_text_add(&t, "%sram_size=0x%zx\nprogress=0x%" PRIx64 "\nhalted=%d\nguest=%s\n", machine_magic, vm->ram_size,
	    (uint64_t)atomic_load(&vm->progress), vm->halted ? 1 : 0, guest);
	return put(st, "machine", &t);
}

/* ---- reading ---- */

/* "0x" followed by 1..32 hex digits into lo/hi; 0 or -1. */
static int parse_hex128(const char *s, size_t len, uint64_t *lo, uint64_t *hi)
{
	if (len < 3 || s[0] != '0' || s[1] != 'x' || len - 2 > 32)
		return -1;
	*lo = *hi = 0;
	for (size_t i = 2; i < len; i++) {
		int d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		*hi = (*hi << 4) | (*lo >> 60);
		*lo = (*lo << 4) | (uint64_t)d;
	}
	return 0;
}

static int parse_hex64(const char *s, size_t len, uint64_t *v)
{
	uint64_t hi;
	return parse_hex128(s, len, v, &hi) == 0 && hi == 0 ? 0 : -1;
}

/* One "name=value" line of a blob. */
struct field {
	const char *name, *value;
	size_t name_len, value_len;
};

/*
 * The next line of `text` after *pos (empty lines skipped): 1 with *f
 * filled, 0 at the end, -1 for a line without '='.
 */
static int next_field(const char *text, size_t len, size_t *pos, struct field *f)
{
	while (*pos < len) {
		const char *line = text + *pos;
		const char *nl = memchr(line, '\n', len - *pos);
		size_t ll = nl ? (size_t)(nl - line) : len - *pos;
		*pos += ll + (nl ? 1 : 0);
		if (ll == 0)
			continue;
		const char *eq = memchr(line, '=', ll);
		f->name = line;
		f->name_len = eq ? (size_t)(eq - line) : ll;
		if (!eq)
			return -1;
		f->value = eq + 1;
		f->value_len = ll - f->name_len - 1;
		return 1;
	}
	return 0;
}

static bool is(const struct field *f, const char *name)
{
	return strlen(name) == f->name_len && !memcmp(f->name, name, f->name_len);
}

static bool starts(const void *blob, size_t len, const char *magic)
{
	return len >= strlen(magic) && !memcmp(blob, magic, strlen(magic));
}

/* One field of a blob; *have: the one restore needs was there. */
typedef void field_fn(const struct field *f, struct vm_saved *s, bool *have);

static void console_field(const struct field *f, struct vm_saved *s, bool *have)
{
	if (is(f, "bytes"))
		*have = parse_hex64(f->value, f->value_len, &s->console_bytes) == 0;
}

static void machine_field(const struct field *f, struct vm_saved *s, bool *have)
{
	if (is(f, "progress"))
		*have = parse_hex64(f->value, f->value_len, &s->progress) == 0;
	else if (is(f, "halted"))
		s->halted = f->value_len == 1 && f->value[0] == '1';
	else if (is(f, "guest") && f->value_len)
		snprintf(s->guest, sizeof(s->guest), "%.*s", (int)f->value_len, f->value);
}

/* The console or machine blob: the field restore needs must be there;
 * others are left for later versions.  0 or -1. */
static int read_blob(const char *text, size_t len, const char *magic, field_fn *fn, struct vm_saved *s)
{
	size_t pos = strlen(magic);
	struct field f;
	bool have = false;
	int rc;
	if (!starts(text, len, magic))
		return -1;
	while ((rc = next_field(text, len, &pos, &f)) == 1)
		fn(&f, s, &have);
	return rc == 0 && have ? 0 : -1;
}

int vm_state_read(bgsnap_reader *r, struct vm_saved *s, char *err, size_t err_len)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->guest, sizeof(s->guest), "?");
	struct bgsnap_region_info ri;
	int idx = bgsnap_reader_find_region(r, "ram");
	if (idx < 0 || bgsnap_reader_region(r, (unsigned)idx, &ri, sizeof ri) < 0)
		return cli_fail(err, err_len, -EINVAL, "no region \"ram\": not a bgsnap-vm snapshot");
	s->region = (unsigned)idx;
	s->ram_size = ri.size;
	const void *cpu, *con, *mach;
	size_t conl, machl;
	if (bgsnap_reader_find_state(r, "cpu", &cpu, &s->cpu_len) < 0 ||
	    bgsnap_reader_find_state(r, "console", &con, &conl) < 0 ||
	    bgsnap_reader_find_state(r, "machine", &mach, &machl) < 0)
		return cli_fail(err, err_len, -EINVAL,
		                "state blobs cpu, console and machine are required: not a bgsnap-vm snapshot");
	s->cpu = cpu;
	if (read_blob(con, conl, console_magic, console_field, s) < 0 ||
	    read_blob(mach, machl, machine_magic, machine_field, s) < 0)
		return cli_fail(err, err_len, -EINVAL, "bad console or machine state blob");
	return 0;
}

/* Register i of the "cpu" blob's line f, checked. */
static int load_reg(struct vm *vm, const struct field *f, bool *seen, char *err, size_t err_len)
{
	unsigned i, n = vm_reg_count();
	for (i = 0; i < n && !is(f, vm_reg_name(i)); i++)
		;
	if (i == n)
		return cli_fail(err, err_len, -EINVAL, "state blob \"cpu\": unknown register %.*s",
		                (int)(f->name_len > 32 ? 32 : f->name_len), f->name);
	uint64_t v[2];
	if (parse_hex128(f->value, f->value_len, &v[0], &v[1]) != 0 || (vm_reg_bytes(i) == 8 && v[1] != 0))
		return cli_fail(err, err_len, -EINVAL, "state blob \"cpu\": bad value for %s", vm_reg_name(i));
	if (seen[i])
		return cli_fail(err, err_len, -EINVAL, "state blob \"cpu\": %s appears twice", vm_reg_name(i));
	seen[i] = true;
	if (vm_reg_write(vm, i, v) < 0)
		return cli_fail(err, err_len, -EIO, "Unicorn: cannot set %s", vm_reg_name(i));
	return 0;
}

static int load_cpu(struct vm *vm, const char *text, size_t len, char *err, size_t err_len)
{
	if (!starts(text, len, cpu_magic))
		return cli_fail(err, err_len, -EINVAL, "state blob \"cpu\" is not a bgsnap-vm cpu state (version 1)");
	bool seen[VM_MAX_REGS] = { false };
	size_t pos = strlen(cpu_magic);
	struct field f;
	int rc;
	while ((rc = next_field(text, len, &pos, &f)) == 1)
		if ((rc = load_reg(vm, &f, seen, err, err_len)) < 0)
			return rc;
	if (rc < 0)
		return cli_fail(err, err_len, -EINVAL, "state blob \"cpu\": line without '=': %.*s",
		                (int)(f.name_len > 60 ? 60 : f.name_len), f.name);
	for (unsigned i = 0; i < vm_reg_count(); i++)
		if (!seen[i])
			return cli_fail(err, err_len, -EINVAL, "state blob \"cpu\": register %s is missing", vm_reg_name(i));
	return 0;
}

int vm_state_load(struct vm *vm, const struct vm_saved *s, char *err, size_t err_len)
{
	int rc = load_cpu(vm, s->cpu, s->cpu_len, err, err_len);
	if (rc < 0)
		return rc;
	vm->console_bytes = s->console_bytes;
	vm->halted = s->halted;
	atomic_store(&vm->progress, s->progress);
	return 0;
}
