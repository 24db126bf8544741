/*
 * boot.c - the machine a run starts from: a fresh VM with a guest loaded
 * (a built-in guest or a flat binary from a file), or a VM rebuilt from a
 * snapshot (RAM restored eagerly, or lazily while the guest already runs;
 * registers, console count and progress from the state blobs, state.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/clock.h"
#include "runner.h"
#include "state.h"

/* A flat binary from a file, at most what fits below the guest's data. */
static void *read_image(const char *path, size_t *len, int *rc)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		cli_error("%s: not a built-in guest (see `bgsnap-vm guests`) and cannot open it as a file: %s", path,
		          strerror(errno));
		*rc = EXIT_USAGE;
		return NULL;
	}
	size_t cap = VM_DATA_ADDR - VM_LOAD_ADDR + 1;
	void *img = malloc(cap);
	if (img)
		*len = fread(img, 1, cap, f);
	bool bad = !img || ferror(f);
	fclose(f);
	if (bad) {
		cli_error("%s: cannot read the guest image", path);
		free(img);
		*rc = EXIT_FAIL;
		return NULL;
	}
	return img;
}

int boot_guest(struct runner *r, const char *guest, uint64_t mem, uint64_t rounds, bool thp)
{
	const struct vm_guest *g = vm_guest_find(guest);
	void *img = NULL;
	size_t len = 0;
	int rc = EXIT_OK;
	if (g)
		len = (size_t)(g->end - g->start);
	else if (!(img = read_image(guest, &len, &rc)))
		return rc;
	r->guest_name = g ? g->name : guest;
	char err[512];
	if (vm_create(&r->vm, mem, true, thp, err, sizeof(err)) < 0 ||
	    vm_load_guest(&r->vm, g ? (const void *)g->start : img, len, rounds, err, sizeof(err)) < 0) {
		cli_error("%s", err);
		rc = EXIT_FAIL;
	}
	free(img);
	return rc;
}

/* Guest RAM from the snapshot; a lazy restore keeps the reader. */
static int restore_ram(struct runner *r, bgsnap_reader *rd, const char *path, const struct vm_saved *s, bool lazy)
{
	char err[512];
	struct bgsnap_restore_target tg = { .region = s->region, .dst = r->vm.ram, .len = r->vm.ram_size };
	double t = mono_s();
	if (lazy) {
		/* RAM is filled on demand while the guest already runs; the
		 * reader stays borrowed until the restore is complete. */
		if (bgsnap_lazy_restore_start(&r->lazy, rd, &tg, 1, err, sizeof(err)) < 0) {
			cli_error("%s: lazy restore: %s", path, err);
			bgsnap_reader_close(rd);
			return EXIT_FAIL;
		}
		r->lazy_reader = rd;
		progress_begin(&r->bar, r->progress_mode, "restore", r->vm.ram_size);
	} else {
		struct bgsnap_file_info fi;
		uint64_t size = bgsnap_reader_info(rd, &fi, sizeof fi) == 0 ? fi.file_bytes : 0;
		bgsnap_reader_close(rd);
		/* One call that reads the file once: the line follows the reads. */
		struct progress_watch w;
		progress_watch_begin(&w, r->progress_mode, "restore", size);
		int rc;
		if (r->map_restore) {
			/* The reader stays open for the call only: the mappings
			 * keep the file itself. */
			bgsnap_reader *mr;
			unsigned mapped = 0;
			rc = bgsnap_reader_open(&mr, path, err, sizeof(err));
			if (rc == 0) {
				rc = bgsnap_restore_map(mr, &tg, 1, 0, 0, &mapped, err, sizeof(err));
				bgsnap_reader_close(mr);
			}
			if (rc == 0 && r->stats)
				cli_error("guest RAM %s", mapped ? "mapped from the snapshot" : "copied (the snapshot is not "
				          "page-aligned)");
		} else {
			rc = bgsnap_restore(path, &tg, 1, 0, err, sizeof(err));
		}
		progress_watch_end(&w);
		if (rc < 0) {
			cli_error("%s: cannot restore guest RAM: %s", path, err);
			return EXIT_FAIL;
		}
	}
	if (r->stats)
		cli_error("guest RAM %s in %.1f ms", lazy ? "usable (lazy restore)" : "restored", (mono_s() - t) * 1e3);
	return EXIT_OK;
}

/*
 * A snapshot arriving on a pipe or stdin: its RAM region's size is in the
 * header, so the machine is made first and RAM restored as the records
 * come (bgsnap_restore_stream); the state blobs come last, and are read
 * once the stream ended intact.  Nothing runs unless every check passed.
 */
static int lazy_stream(const char *path)
{
	cli_error("%s: a stream can only be restored eagerly (a lazy restore reads pages in any order); "
	          "save it to a file first (exec:cat > FILE) for --lazy", path);
	return EXIT_USAGE;
}

static int boot_stream(struct runner *r, bgsnap_reader *rd, const char *path, bool lazy, bool thp)
{
	char err[512] = "";
	if (lazy)
		return lazy_stream(path);
	struct bgsnap_region_info ri;
	int idx = bgsnap_reader_find_region(rd, "ram");
	if (idx < 0 || bgsnap_reader_region(rd, (unsigned)idx, &ri, sizeof ri) < 0) {
		cli_error("%s: no region \"ram\": not a bgsnap-vm snapshot", path);
		return EXIT_FAIL;
	}
	if (vm_create(&r->vm, ri.size, false, thp, err, sizeof(err)) < 0) {
		cli_error("%s", err);
		return EXIT_FAIL;
	}
	struct bgsnap_restore_target tg = { .region = (unsigned)idx, .dst = r->vm.ram, .len = r->vm.ram_size };
	double t = mono_s();
	struct progress_watch w;
	progress_watch_begin(&w, r->progress_mode, "restore", 0);
	int rc = bgsnap_restore_stream(rd, &tg, 1, err, sizeof(err));
	progress_watch_end(&w);
	if (rc < 0) {
		cli_error("%s: cannot restore guest RAM: %s", path, err);
		return EXIT_FAIL;
	}
	if (r->stats)
		cli_error("guest RAM restored from the stream in %.1f ms", (mono_s() - t) * 1e3);
	struct vm_saved s;
	if (vm_state_read(rd, &s, err, sizeof(err)) < 0 || vm_state_load(&r->vm, &s, err, sizeof(err)) < 0) {
		cli_error("%s: %s", path, err);
		return EXIT_FAIL;
	}
	snprintf(r->guest, sizeof(r->guest), "%s", s.guest);
	r->guest_name = r->guest;
	if (r->stats)
		cli_error("restored %s: guest %s, %zu MiB RAM, console offset %" PRIu64 ", rip 0x%" PRIx64, path,
		          r->guest_name, r->vm.ram_size >> 20, s.console_bytes, r->vm.rip);
	return EXIT_OK;
}

int boot_snapshot(struct runner *r, const char *path, bool lazy, bool thp)
{
	struct vm_saved s;
	char err[512] = "";
	int fd;
	if (lazy && !strcmp(path, "-"))
		return lazy_stream(path);   /* said before reading stdin */
	bgsnap_reader *rd = cli_open_any(path, &fd);
	if (!rd)
		return EXIT_FAIL;
	if (!bgsnap_reader_path(rd)) {
		int rc = boot_stream(r, rd, path, lazy, thp);
		bgsnap_reader_close(rd);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (vm_state_read(rd, &s, err, sizeof(err)) < 0) {
		cli_error("%s: %s", path, err);
		bgsnap_reader_close(rd);
		return EXIT_FAIL;
	}
	snprintf(r->guest, sizeof(r->guest), "%s", s.guest);
	r->guest_name = r->guest;
	if (vm_create(&r->vm, s.ram_size, false, thp, err, sizeof(err)) < 0) {
		cli_error("%s", err);
		bgsnap_reader_close(rd);
		return EXIT_FAIL;
	}
	if (vm_state_load(&r->vm, &s, err, sizeof(err)) < 0) {
		cli_error("%s: %s", path, err);
		bgsnap_reader_close(rd);
		return EXIT_FAIL;
	}
	if (restore_ram(r, rd, path, &s, lazy) != EXIT_OK)
		return EXIT_FAIL;
	if (r->stats)
		cli_error("restored %s: guest %s, %zu MiB RAM, console offset %" PRIu64 ", rip 0x%" PRIx64, path,
		          r->guest_name, r->vm.ram_size >> 20, s.console_bytes, r->vm.rip);
	return EXIT_OK;
}
