/*
 * state.h - the VM's state in a snapshot, written and read here only.
 *
 * Besides region "ram", three state blobs, each text: a first line naming
 * the blob and its version, then "name=value" lines (numbers in hex with
 * 0x, so no byte order), captured while the vCPU is parked:
 *   cpu      "bgsnap-vm cpu 1"      every register of vm_reg_name()
 *   console  "bgsnap-vm console 1"  bytes: console bytes printed before
 *                                   the pause
 *   machine  "bgsnap-vm machine 1"  ram_size, progress, halted (0/1),
 *                                   guest (its name, as text)
 * A restore refuses a file without them, an unknown or missing register,
 * or a repeated one.
 */
#ifndef BGSNAP_VM_STATE_H
#define BGSNAP_VM_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bgsnap.h"
#include "vm.h"

/* Adds the three blobs of the parked VM running `guest`; 0 or -errno. */
int vm_state_save(bgsnap_state *st, struct vm *vm, const char *guest);

/* What a snapshot says about the VM it was taken of. */
struct vm_saved {
	unsigned region;             /* region "ram"                          */
	uint64_t ram_size;
	uint64_t console_bytes;
	uint64_t progress;
	bool halted;
	char guest[64];              /* "?" when the blob does not say        */
	const char *cpu;             /* the "cpu" blob, owned by the reader   */
	size_t cpu_len;
};

/* Reads a bgsnap-vm snapshot's region and blobs (not the registers yet:
 * the machine does not exist).  0, or -EINVAL with a message in err. */
int vm_state_read(bgsnap_reader *r, struct vm_saved *out, char *err, size_t err_len);
/* Sets the registers of the new machine from the "cpu" blob, and its
 * console count, progress and halted flag.  0, or -errno with a message. */
int vm_state_load(struct vm *vm, const struct vm_saved *s, char *err, size_t err_len);

#endif
