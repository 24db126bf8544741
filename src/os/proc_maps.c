/* proc_maps.c - /proc/self/maps, parsed once for region checks and restore
 * targets (see proc_maps.h). */
#include "os/proc_maps.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* One line of /proc/self/maps into *m (path points into line); 0 if it
 * is not one. */
static int parse_line(char *line, struct maps_entry *m)
{
	int path_off = 0;
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %" SCNx32 ":%" SCNx32 " %" SCNu64 " %n", &m->lo,
	           &m->hi, m->perms, &m->offset, &m->dev_major, &m->dev_minor, &m->inode, &path_off) < 7)
		return 0;
	size_t n = strcspn(line, "\n");
	line[n] = '\0';
	m->path = line + (path_off > 0 && (size_t)path_off <= n ? (size_t)path_off : n);
	return 1;
}

int maps_walk(const void *addr, uint64_t len, int (*fn)(const struct maps_entry *m, void *ctx), void *ctx,
              struct bgsnap_err *err)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return err_sys(err, -errno, "cannot read /proc/self/maps");
	uint64_t start = (uint64_t)(uintptr_t)addr, end = start + len, covered = start;
	char line[4096 + 256];
	int r = 0;
	while (covered < end && fgets(line, sizeof(line), f)) {
		struct maps_entry m;
		if (!parse_line(line, &m))
			continue;
		if (m.hi <= covered || m.lo >= end)
			continue;
		if (m.lo > covered)
			break;   /* a hole before this mapping */
		r = fn(&m, ctx);
		if (r)
			break;
		covered = m.hi;
	}
	fclose(f);
	if (!r && covered < end)
		r = err_set(err, -EFAULT, "0x%" PRIx64 " is not mapped (range 0x%" PRIx64 "+0x%" PRIx64 ")",
		            covered, start, len);
	return r;
}

int maps_walk_all(int (*fn)(const struct maps_entry *m, void *ctx), void *ctx, struct bgsnap_err *err)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return err_sys(err, -errno, "cannot read /proc/self/maps");
	char line[4096 + 256];
	int r = 0;
	while (!r && fgets(line, sizeof(line), f)) {
		struct maps_entry m;
		if (parse_line(line, &m))
			r = fn(&m, ctx);
	}
	fclose(f);
	return r;
}

int maps_page_size(uint64_t lo, uint64_t *bytes)
{
	/* smaps walks the page tables of every mapping it prints: stop at ours. */
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	char line[4096 + 256];
	int in = 0, r = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		uint64_t a, b, kb;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &a, &b) == 2) {
			if (in)
				break;
			in = a == lo;
		} else if (in && sscanf(line, "KernelPageSize: %" SCNu64 " kB", &kb) == 1) {
			*bytes = kb << 10;
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}
