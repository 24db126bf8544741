; sieve - segmented sieve of Eratosthenes over a byte array of up to 16 MiB
; of guest RAM (one byte per number), one round per limit (the limit shrinks a
; little each round); prints the number of primes and the largest one
; below each round's limit, and the counts below the powers of ten in the
; last round.  Segments of 128 KiB keep the emulated TLB warm.
; Progress unit: one 4 KiB piece of the array sieved.
%include "lib.inc"

ROUNDS  equ 2                  ; default rounds
STEP    equ 1000003            ; the limit shrinks by this each round
SEGSZ     equ 128 * 1024         ; segment bytes
SMALL   equ 0x20000            ; small sieve up to sqrt(limit), <= 64 KiB
PRIMES  equ 0x30000            ; dword primes up to sqrt(limit)
NEXT    equ 0x40000            ; qword next multiple to mark, per prime
MAXLIM  equ 16 << 20           ; emulated stores are slow: keep it seconds

main:
	ENTRY ROUNDS                  ; r12 end of RAM, r13 DATA, r14 rounds
	mov rbp, r12
	sub rbp, r13              ; limit of round 1 (array size)
	mov rax, MAXLIM
	cmp rbp, rax
	jbe .lim_ok
	mov rbp, rax
.lim_ok:
	PRINT "sieve: limit "
	PRINTDEC rbp
	PRINT ", "
	PRINTDEC r14
	PRINT " rounds"
	NEWLINE
	xor r15, r15
.round:
	inc r15
	call small_primes         ; r8 = number of primes, tables filled
	; sieve segment by segment
	xor r9, r9                ; segment start
.seg:
	mov rdi, r13
	add rdi, r9
	mov ecx, SEGSZ / 8
	xor eax, eax
	rep stosq
	mov r10, r9
	add r10, SEGSZ              ; segment end
	cmp r10, rbp
	jbe .seg_end_ok
	mov r10, rbp
.seg_end_ok:
	xor ebx, ebx              ; prime index
.prime:
	cmp rbx, r8
	jae .seg_done
	mov esi, [PRIMES + rbx * 4]
	mov rdi, [NEXT + rbx * 8]
	cmp rdi, r10
	jae .prime_next
.mark:
	mov byte [r13 + rdi], 1
	add rdi, rsi
	cmp rdi, r10
	jb .mark
	mov [NEXT + rbx * 8], rdi
.prime_next:
	inc rbx
	jmp .prime
.seg_done:
	REPORT SEGSZ / 4096
	mov r9, r10
	cmp r9, rbp
	jb .seg
	; count primes in [2, limit) and remember the last one
	xor ecx, ecx
	xor ebx, ebx
	mov rsi, 2
	mov r9, 10                ; next power of ten
.cnt:
	cmp rsi, r9
	jne .cnt_test
	cmp r15, r14              ; last round: print pi(10^k)
	jne .cnt_pow
	PRINT "  primes below "
	PRINTDEC r9
	PRINT ": "
	PRINTDEC rcx
	NEWLINE
.cnt_pow:
	imul r9, r9, 10
.cnt_test:
	cmp byte [r13 + rsi], 0
	jne .cnt_next
	inc rcx
	mov rbx, rsi
.cnt_next:
	inc rsi
	cmp rsi, rbp
	jb .cnt
	PRINT "round "
	PRINTDEC r15
	PRINT ": "
	PRINTDEC rcx
	PRINT " primes below "
	PRINTDEC rbp
	PRINT ", largest "
	PRINTDEC rbx
	NEWLINE
	cmp rbp, 2 * STEP         ; small RAM: keep the limit
	jb .keep
	sub rbp, STEP
.keep:
	cmp r15, r14
	jb .round
	PRINT "sieve done"
	NEWLINE
	HALT

; Primes p with p*p < limit (rbp) into PRIMES, NEXT[k] = p*p; r8 = count.
small_primes:
	; r = smallest r with r*r >= limit
	xor ecx, ecx
.sq:
	inc rcx
	mov rax, rcx
	mul rcx
	cmp rax, rbp
	jb .sq
	; clear SMALL[0..r]
	mov rdi, SMALL
	mov rdx, rcx
	push rcx
	inc rcx
	xor eax, eax
	rep stosb
	pop rcx
	xor r8, r8
	mov rsi, 2
.outer:
	cmp rsi, rcx
	jae .done
	cmp byte [SMALL + rsi], 0
	jne .outer_next
	mov rax, rsi
	mul rsi                   ; p*p
	mov [PRIMES + r8 * 4], esi
	mov [NEXT + r8 * 8], rax
	inc r8
	mov rdi, rax
.inner:
	cmp rdi, rcx
	jae .outer_next
	mov byte [SMALL + rdi], 1
	add rdi, rsi
	jmp .inner
.outer_next:
	inc rsi
	jmp .outer
.done:
	ret
