/*
 * vm.h - the reference VM's machine (guest RAM, one vCPU thread on Unicorn,
 * the console and progress ports, the registers) and its guest table.
 *
 * Invariant of the machine: the vCPU stops only at a translated-block
 * boundary, by itself (see machine.c).  The vCPU thread is the only thread inside
 * Unicorn while it runs; every other thread touches the Unicorn engine,
 * the console counters or `rip` only while the vCPU is parked (vm_pause()
 * returned and vm_resume() not yet called).
 */
#ifndef BGSNAP_VM_H
#define BGSNAP_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The guest ABI (see vm/guests/lib.inc). */
#define VM_LOAD_ADDR   0x10000u
#define VM_DATA_ADDR   0x100000u
#define VM_PORT_CONSOLE  0x3f8u
#define VM_PORT_PROGRESS 0x81u
#define VM_MIN_RAM     (2u << 20)
#define VM_MAX_RAM     (2ull << 30)

struct uc_struct;

struct vm {
	struct uc_struct *uc;
	uint8_t *ram;                /* guest physical 0 .. ram_size         */
	size_t ram_size;
	void *map;                   /* the whole mapping (ram is aligned in it) */
	size_t map_len;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pause_holders;      /* > 0: the vCPU must stay parked       */
	bool in_emu;                 /* inside uc_emu_start                  */
	bool parked;                 /* outside Unicorn, waiting to run      */
	bool finished;               /* the run is over (halt, error, quit)  */
	bool halted;                 /* the guest executed hlt               */
	bool quit;                   /* asked to end                         */
	_Atomic bool stop_flag;      /* pause_holders > 0 or quit            */
	bool hook_stopped;           /* vCPU thread only: the block hook stopped it */
	int error;                   /* Unicorn error that ended the run, 0  */
	char errmsg[200];
	uint64_t rip;                /* where the vCPU continues             */
	int done_fd;                 /* eventfd signalled when finished      */

	FILE *console;               /* the guest's console (stdout)         */
	bool console_tty;            /* flush at each newline                */
	uint64_t console_bytes;      /* bytes the guest printed, all runs    */
	_Atomic uint64_t progress;   /* work units the guest reported        */
};

/* Creates the machine with `ram_size` bytes of RAM (a multiple of 4 KiB,
 * VM_MIN_RAM..VM_MAX_RAM), populated (zeroed) now if `populate`, else left
 * untouched (a restore target); backed by transparent huge pages (as VMMs
 * back guest RAM) if `thp`, else by 4 KiB pages only.  Returns 0, or -errno
 * with a message in `err`. */
int vm_create(struct vm *vm, size_t ram_size, bool populate, bool thp, char *err, size_t err_len);
void vm_destroy(struct vm *vm);
/* Loads a flat guest image at VM_LOAD_ADDR and sets the entry registers. */
int vm_load_guest(struct vm *vm, const void *image, size_t len, uint64_t rounds,
                  char *err, size_t err_len);
/* Starts the vCPU thread. */
int vm_start(struct vm *vm, char *err, size_t err_len);
/* Parks the vCPU at an instruction boundary (nests); 0, or -ESRCH when the
 * run is already over (the vCPU is parked anyway). */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Ends the run: the vCPU stops and the thread exits. */
void vm_quit(struct vm *vm);
/* Waits for the vCPU thread to exit. */
void vm_join(struct vm *vm);
bool vm_finished(struct vm *vm);

/* The vCPU registers a snapshot carries, by index 0..vm_reg_count()-1
 * (call while parked): name, size (8 or 16 bytes), value as v[0] low and
 * v[1] high 64 bits.  read/write return 0 or -EIO. */
#define VM_MAX_REGS 64
unsigned vm_reg_count(void);
const char *vm_reg_name(unsigned i);
unsigned vm_reg_bytes(unsigned i);
int vm_reg_read(struct vm *vm, unsigned i, uint64_t v[2]);
int vm_reg_write(struct vm *vm, unsigned i, const uint64_t v[2]);

/* Guests built into the binary. */
struct vm_guest {
	const char *name;
	const char *desc;
	const unsigned char *start;
	const unsigned char *end;
};
extern const struct vm_guest vm_guests[];
extern const size_t vm_guest_count;
const struct vm_guest *vm_guest_find(const char *name);

#endif
