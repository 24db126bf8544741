; sweep - increments one byte in every 4 KiB page of guest RAM, pass after
; pass, then prints a checksum of every page.  The worst case for a
; background snapshot: every page is written again within milliseconds.
; Progress unit: one page written.
%include "lib.inc"

PASSES      equ 1500          ; default rounds
REPORT_PAGES equ 256          ; progress reported every 1 MiB

main:
	ENTRY PASSES                  ; r12 end of RAM, r13 DATA, r14 rounds
	mov rbp, r12
	sub rbp, r13
	shr rbp, 12               ; pages swept
	PRINT "sweep: "
	PRINTDEC rbp
	PRINT " pages, "
	PRINTDEC r14
	PRINT " passes"
	NEWLINE
	; one progress line per tenth of the run
	mov rax, r14
	xor edx, edx
	mov rcx, 10
	div rcx
	test rax, rax
	jnz .step_ok
	mov eax, 1
.step_ok:
	mov r10, rax              ; passes between lines
	xor r15, r15              ; passes done
.pass:
	mov rbx, r13
	mov ecx, REPORT_PAGES
.page:
	inc byte [rbx]
	add rbx, 4096
	dec ecx
	jnz .next
	REPORT REPORT_PAGES
	mov ecx, REPORT_PAGES
.next:
	cmp rbx, r12
	jb .page
	inc r15
	mov rax, r15
	xor edx, edx
	div r10
	test rdx, rdx
	jnz .no_line
	PRINT "pass "
	PRINTDEC r15
	PRINT " sum "
	call checksum
	PRINTHEX rax
	NEWLINE
.no_line:
	cmp r15, r14
	jb .pass
	PRINT "sweep done: checksum "
	call checksum
	PRINTHEX rax
	NEWLINE
	HALT

; rax = sum over pages i of (byte 0 of page i) * (i + 1), mixed; a page
; captured one pass too early or too late changes it.
checksum:
	push rbx
	push rcx
	push rdx
	mov rbx, r13
	xor eax, eax
	xor ecx, ecx
.c:
	inc rcx
	movzx rdx, byte [rbx]
	imul rdx, rcx
	add rax, rdx
	rol rax, 5
	add rbx, 4096
	cmp rbx, r12
	jb .c
	pop rdx
	pop rcx
	pop rbx
	ret
