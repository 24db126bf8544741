/*
 * machine.c - the reference VM's machine: guest RAM (one anonymous mapping
 * with MADV_HUGEPAGE, mapped into Unicorn with uc_mem_map_ptr so that guest
 * stores go straight to host memory), one vCPU thread running uc_emu_start,
 * the console port, the progress port, and the vCPU registers by name (state.c
 * carries them in a snapshot).
 *
 * Pause protocol: vm_pause() raises pause_holders and the atomic stop_flag
 * and waits until the vCPU thread reports it is parked.  The vCPU stops
 * itself: a UC_HOOK_BLOCK hook, called before each translated block runs,
 * sees stop_flag and calls uc_emu_stop(), so the vCPU always stops at a
 * block boundary with its state exact.  (Unicorn 2.0 does not allow
 * uc_emu_stop() from another thread, nor from an instruction hook: the
 * block in flight is cut short and then executed again from its start on
 * the next uc_emu_start(), which repeats its stores; measured.)  A return
 * from uc_emu_start() that the block hook did not cause is a hlt.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <unicorn/unicorn.h>

#include "cli/cli.h"
#include "vm.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define HUGE_2M (2u << 20)
/* Never reached: the guest runs until hlt or a stop. */
#define VM_UNTIL 0xfffffffffffff000ull

static void hook_block(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
	struct vm *vm = user;
	(void)addr;
	(void)size;
	if (atomic_load_explicit(&vm->stop_flag, memory_order_acquire)) {
		vm->hook_stopped = true;
		uc_emu_stop(uc);
	}
}

static void hook_out(uc_engine *uc, uint32_t port, int size, uint32_t value, void *user)
{
	struct vm *vm = user;
	(void)uc;
	(void)size;
	if (port == VM_PORT_CONSOLE) {
		unsigned char c = value & 0xff;
		putc_unlocked(c, vm->console);
		vm->console_bytes++;
		if (c == '\n' && vm->console_tty)
			fflush_unlocked(vm->console);
	} else if (port == VM_PORT_PROGRESS) {
		atomic_fetch_add_explicit(&vm->progress, value, memory_order_relaxed);
	}
}

/* Guest RAM, aligned to 2 MiB so that transparent huge pages can back all
 * of it. */
static int map_ram(struct vm *vm, size_t ram_size, bool populate, bool thp, char *err, size_t err_len)
{
	vm->map_len = ram_size + HUGE_2M;
	vm->map = mmap(NULL, vm->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->map == MAP_FAILED) {
		int e = errno;
		vm->map = NULL;
		return cli_fail(err, err_len, -e, "cannot map %zu bytes of guest RAM: %s", ram_size, strerror(e));
	}
	uintptr_t a = ((uintptr_t)vm->map + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1);
	vm->ram = (uint8_t *)a;
	vm->ram_size = ram_size;
	/* Both only make the VM faster; a kernel without them still works.
	 * A restore target is left untouched: the restore fills it. */
	(void)madvise(vm->ram, ram_size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (populate)
		(void)madvise(vm->ram, ram_size, MADV_POPULATE_WRITE);
	return 0;
}

/* The x86-64 CPU over guest RAM, with the port and block hooks. */
static int open_cpu(struct vm *vm, char *err, size_t err_len)
{
	uc_engine *uc;
	uc_err ue = uc_open(UC_ARCH_X86, UC_MODE_64, &uc);
	if (ue != UC_ERR_OK)
		return cli_fail(err, err_len, -EIO, "Unicorn: cannot open an x86-64 CPU: %s", uc_strerror(ue));
	vm->uc = uc;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->cond, &ca);
	pthread_condattr_destroy(&ca);
	ue = uc_mem_map_ptr(uc, 0, vm->ram_size, UC_PROT_ALL, vm->ram);
	if (ue != UC_ERR_OK)
		return cli_fail(err, err_len, -EIO, "Unicorn: cannot map guest RAM: %s", uc_strerror(ue));
	uc_hook h;
	ue = uc_hook_add(uc, &h, UC_HOOK_INSN, (void *)hook_out, vm, 1, 0, UC_X86_INS_OUT);
	if (ue != UC_ERR_OK)
		return cli_fail(err, err_len, -EIO, "Unicorn: cannot hook the out instruction: %s", uc_strerror(ue));
	ue = uc_hook_add(uc, &h, UC_HOOK_BLOCK, (void *)hook_block, vm, 1, 0);
	if (ue != UC_ERR_OK)
		return cli_fail(err, err_len, -EIO, "Unicorn: cannot add the block hook: %s", uc_strerror(ue));
	return 0;
}

int vm_create(struct vm *vm, size_t ram_size, bool populate, bool thp, char *err, size_t err_len)
{
	memset(vm, 0, sizeof(*vm));
	vm->done_fd = -1;
	if (ram_size < VM_MIN_RAM || ram_size > VM_MAX_RAM || ram_size % 4096)
		return cli_fail(err, err_len, -EINVAL, "guest RAM must be a multiple of 4 KiB between %u MiB and %llu MiB",
		                VM_MIN_RAM >> 20, VM_MAX_RAM >> 20);
	int rc = map_ram(vm, ram_size, populate, thp, err, err_len);
	if (rc == 0)
		rc = open_cpu(vm, err, err_len);
	if (rc == 0 && (vm->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		int e = errno;
		rc = cli_fail(err, err_len, -e, "eventfd: %s", strerror(e));
	}
	if (rc < 0) {
		vm_destroy(vm);
		return rc;
	}
	vm->console = stdout;
	vm->console_tty = isatty(fileno(stdout));
	vm->parked = true;
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (vm->thread_started) {
		vm_quit(vm);
		vm_join(vm);
	}
	if (vm->uc) {
		uc_close(vm->uc);
		pthread_mutex_destroy(&vm->lock);
		pthread_cond_destroy(&vm->cond);
	}
	if (vm->done_fd >= 0)
		close(vm->done_fd);
	if (vm->map)
		munmap(vm->map, vm->map_len);
	memset(vm, 0, sizeof(*vm));
	vm->done_fd = -1;
}

int vm_load_guest(struct vm *vm, const void *image, size_t len, uint64_t rounds, char *err, size_t err_len)
{
	if (len == 0 || len > VM_DATA_ADDR - VM_LOAD_ADDR || VM_DATA_ADDR >= vm->ram_size) {
		return cli_fail(err, err_len, -EINVAL,
		                "guest image of %zu bytes does not fit (at most %u bytes, RAM above %u MiB)", len,
		                VM_DATA_ADDR - VM_LOAD_ADDR, VM_DATA_ADDR >> 20);
	}
	memcpy(vm->ram + VM_LOAD_ADDR, image, len);
	uint64_t rsp = VM_LOAD_ADDR, rdi = vm->ram_size, rsi = rounds;
	if (uc_reg_write(vm->uc, UC_X86_REG_RSP, &rsp) || uc_reg_write(vm->uc, UC_X86_REG_RDI, &rdi) ||
	    uc_reg_write(vm->uc, UC_X86_REG_RSI, &rsi)) {
		return cli_fail(err, err_len, -EIO, "Unicorn: cannot set the entry registers");
	}
	vm->rip = VM_LOAD_ADDR;
	return 0;
}

static void finish_locked(struct vm *vm)
{
	vm->finished = true;
	vm->parked = true;
	pthread_cond_broadcast(&vm->cond);
	uint64_t one = 1;
	ssize_t n = write(vm->done_fd, &one, sizeof(one));
	(void)n; /* an eventfd write of 1 cannot fail short of overflow */
}

static void *vcpu_main(void *arg)
{
	struct vm *vm = arg;
	pthread_mutex_lock(&vm->lock);
	while (!vm->halted) {
		while (vm->pause_holders > 0 && !vm->quit) {
			vm->parked = true;
			pthread_cond_broadcast(&vm->cond);
			pthread_cond_wait(&vm->cond, &vm->lock);
		}
		if (vm->quit)
			break;
		vm->parked = false;
		vm->in_emu = true;
		uint64_t rip = vm->rip;
		pthread_mutex_unlock(&vm->lock);

		vm->hook_stopped = false;
		uc_err ue = uc_emu_start(vm->uc, rip, VM_UNTIL, 0, 0);
		uint64_t now_rip = 0;
		uc_reg_read(vm->uc, UC_X86_REG_RIP, &now_rip);

		pthread_mutex_lock(&vm->lock);
		vm->in_emu = false;
		vm->rip = now_rip;
		if (ue != UC_ERR_OK) {
			vm->error = (int)ue;
			snprintf(vm->errmsg, sizeof(vm->errmsg), "guest stopped at rip 0x%llx: %s",
			         (unsigned long long)now_rip, uc_strerror(ue));
			break;
		}
		if (!vm->hook_stopped)
			vm->halted = true;
	}
	fflush(vm->console);
	finish_locked(vm);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vm_start(struct vm *vm, char *err, size_t err_len)
{
	if (vm->halted) {
		/* A snapshot of a halted guest: nothing left to run. */
		pthread_mutex_lock(&vm->lock);
		finish_locked(vm);
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	int e = pthread_create(&vm->thread, NULL, vcpu_main, vm);
	if (e) {
		return cli_fail(err, err_len, -e, "cannot start the vCPU thread: %s", strerror(e));
	}
	vm->thread_started = true;
	return 0;
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_holders++;
	atomic_store_explicit(&vm->stop_flag, true, memory_order_release);
	while (!vm->parked || vm->in_emu)
		pthread_cond_wait(&vm->cond, &vm->lock);
	int r = vm->finished ? -ESRCH : 0;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_holders > 0)
		vm->pause_holders--;
	if (vm->pause_holders == 0 && !vm->quit)
		atomic_store_explicit(&vm->stop_flag, false, memory_order_release);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_quit(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->quit = true;
	atomic_store_explicit(&vm->stop_flag, true, memory_order_release);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	/* Stop a running vCPU; it then sees `quit`. */
	vm_pause(vm);
	vm_resume(vm);
}

void vm_join(struct vm *vm)
{
	if (vm->thread_started) {
		pthread_join(vm->thread, NULL);
		vm->thread_started = false;
	}
}

bool vm_finished(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool f = vm->finished;
	pthread_mutex_unlock(&vm->lock);
	return f;
}

/* ---- registers ---------------------------------------------------------- */

struct reg_desc {
	const char *name;
	int id;
	int bytes;                   /* 8 or 16 */
};

/* Everything a flat 64-bit guest needs to continue: the general registers,
 * rip, rflags, the fs/gs bases and the SSE registers and control word.
 * Segment selectors, control registers and paging stay as Unicorn's reset
 * state sets them (guests must not change them). */
static const struct reg_desc regs[] = {
	{"rax", UC_X86_REG_RAX, 8}, {"rbx", UC_X86_REG_RBX, 8}, {"rcx", UC_X86_REG_RCX, 8},
	{"rdx", UC_X86_REG_RDX, 8}, {"rsi", UC_X86_REG_RSI, 8}, {"rdi", UC_X86_REG_RDI, 8},
	{"rbp", UC_X86_REG_RBP, 8}, {"rsp", UC_X86_REG_RSP, 8}, {"r8", UC_X86_REG_R8, 8},
	{"r9", UC_X86_REG_R9, 8},   {"r10", UC_X86_REG_R10, 8}, {"r11", UC_X86_REG_R11, 8},
	{"r12", UC_X86_REG_R12, 8}, {"r13", UC_X86_REG_R13, 8}, {"r14", UC_X86_REG_R14, 8},
	{"r15", UC_X86_REG_R15, 8}, {"rip", UC_X86_REG_RIP, 8}, {"rflags", UC_X86_REG_RFLAGS, 8},
	{"fs_base", UC_X86_REG_FS_BASE, 8}, {"gs_base", UC_X86_REG_GS_BASE, 8},
	{"mxcsr", UC_X86_REG_MXCSR, 8},
	{"xmm0", UC_X86_REG_XMM0, 16}, {"xmm1", UC_X86_REG_XMM1, 16}, {"xmm2", UC_X86_REG_XMM2, 16},
	{"xmm3", UC_X86_REG_XMM3, 16}, {"xmm4", UC_X86_REG_XMM4, 16}, {"xmm5", UC_X86_REG_XMM5, 16},
	{"xmm6", UC_X86_REG_XMM6, 16}, {"xmm7", UC_X86_REG_XMM7, 16}, {"xmm8", UC_X86_REG_XMM8, 16},
	{"xmm9", UC_X86_REG_XMM9, 16}, {"xmm10", UC_X86_REG_XMM10, 16}, {"xmm11", UC_X86_REG_XMM11, 16},
	{"xmm12", UC_X86_REG_XMM12, 16}, {"xmm13", UC_X86_REG_XMM13, 16}, {"xmm14", UC_X86_REG_XMM14, 16},
	{"xmm15", UC_X86_REG_XMM15, 16},
};
#define NREGS (sizeof(regs) / sizeof(regs[0]))
_Static_assert(NREGS <= VM_MAX_REGS, "state.c counts registers in VM_MAX_REGS");

unsigned vm_reg_count(void)
{
	return NREGS;
}

const char *vm_reg_name(unsigned i)
{
	return regs[i].name;
}

unsigned vm_reg_bytes(unsigned i)
{
	return (unsigned)regs[i].bytes;
}

int vm_reg_read(struct vm *vm, unsigned i, uint64_t v[2])
{
	v[0] = v[1] = 0;
	if (regs[i].id == UC_X86_REG_RIP) {
		v[0] = vm->rip;   /* where the vCPU continues */
		return 0;
	}
	return uc_reg_read(vm->uc, regs[i].id, v) == UC_ERR_OK ? 0 : -EIO;
}

int vm_reg_write(struct vm *vm, unsigned i, const uint64_t v[2])
{
	if (regs[i].id == UC_X86_REG_RIP) {
		vm->rip = v[0];
		return 0;
	}
	return uc_reg_write(vm->uc, regs[i].id, v) == UC_ERR_OK ? 0 : -EIO;
}
