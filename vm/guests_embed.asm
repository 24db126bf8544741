; guests_embed.asm - puts the flat guest binaries (assembled from
; vm/guests/*.asm into $(BUILD)/vm/guests/) into bgsnap-vm, so that it runs
; them from any directory.  nasm finds the .bin files through its -i path.
%macro GUEST 1
	global vm_guest_%1_start
	global vm_guest_%1_end
	%strcat %%file %str(%1), ".bin"
	align 16
vm_guest_%1_start:
	incbin %%file
vm_guest_%1_end:
%endmacro

section .rodata
GUEST sweep
GUEST random
GUEST sieve

section .note.GNU-stack noalloc noexec nowrite progbits
