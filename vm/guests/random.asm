; random - read-modify-writes qwords at pseudo-random addresses all over
; guest RAM (xorshift64), keeps a hash chain of the values it wrote, and
; ends by printing the chain and a hash of all of RAM.
; Progress unit: 4096 writes.
%include "lib.inc"

ROUNDS       equ 8             ; default rounds
WRITES       equ 1 << 20       ; writes per round
MULT         equ 0x100000001b3 ; FNV-1a 64 prime

main:
	ENTRY ROUNDS                  ; r12 end of RAM, r13 DATA, r14 rounds
	mov rbp, r12
	sub rbp, r13
	shr rbp, 3                ; qwords in the data area
	PRINT "random: "
	PRINTDEC rbp
	PRINT " qwords, "
	PRINTDEC r14
	PRINT " rounds of "
	PRINTDEC WRITES
	PRINT " writes"
	NEWLINE
	mov r8, 0x9e3779b97f4a7c15 ; generator state
	mov r9, 0xcbf29ce484222325 ; hash chain
	mov r11, MULT
	xor r15, r15              ; rounds done
.round:
	mov r10d, WRITES
.write:
	mov rax, r8               ; xorshift64
	shl rax, 13
	xor r8, rax
	mov rax, r8
	shr rax, 7
	xor r8, rax
	mov rax, r8
	shl rax, 17
	xor r8, rax
	mov rax, r8
	mul rbp                   ; rdx = r8 * qwords / 2^64
	lea rbx, [r13 + rdx * 8]
	mov rax, [rbx]
	imul rax, r11
	add rax, r8
	mov [rbx], rax
	xor r9, rax
	imul r9, r11
	dec r10d
	test r10d, 4095
	jnz .write_next
	REPORT 1
.write_next:
	test r10d, r10d
	jnz .write
	inc r15
	PRINT "round "
	PRINTDEC r15
	PRINT " chain "
	PRINTHEX r9
	NEWLINE
	cmp r15, r14
	jb .round
	PRINT "random done: chain "
	PRINTHEX r9
	PRINT " ram "
	call ramhash
	PRINTHEX rax
	NEWLINE
	HALT

; rax = hash of every qword of the data area
ramhash:
	push rbx
	mov rbx, r13
	xor eax, eax
.h:
	add rax, [rbx]
	rol rax, 7
	add rbx, 8
	cmp rbx, r12
	jb .h
	pop rbx
	ret
