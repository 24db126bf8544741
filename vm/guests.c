/*
 * guests.c - the table of guests built into bgsnap-vm (their binaries come
 * from guests_embed.asm).  Each entry's description is one line for
 * `bgsnap-vm guests`.
 */
#include <string.h>

#include "vm.h"

#define GUEST_SYMS(n) extern const unsigned char vm_guest_##n##_start[], vm_guest_##n##_end[]
GUEST_SYMS(sweep);
GUEST_SYMS(random);
GUEST_SYMS(sieve);

const struct vm_guest vm_guests[] = {
	{"sweep", "increments one byte in every 4 KiB page of RAM, pass after pass; prints progress and a checksum",
	 vm_guest_sweep_start, vm_guest_sweep_end},
	{"random", "read-modify-writes qwords at pseudo-random addresses; prints a hash chain and a RAM hash",
	 vm_guest_random_start, vm_guest_random_end},
	{"sieve", "sieve of Eratosthenes over a 16 MiB array, two limits; prints prime counts",
	 vm_guest_sieve_start, vm_guest_sieve_end},
};
const size_t vm_guest_count = sizeof(vm_guests) / sizeof(vm_guests[0]);

const struct vm_guest *vm_guest_find(const char *name)
{
	for (size_t i = 0; i < vm_guest_count; i++)
		if (strcmp(vm_guests[i].name, name) == 0)
			return &vm_guests[i];
	return NULL;
}
