// Tiny 64-bit guest, entered by passage in long mode (-entry long) at
// 0x100000 with identity-mapped page tables. It checks that it is in long
// mode, that RAM above 4 GiB works (needs -m > 3G), that MMIO exits reach
// passage's debug device, and that port reads work. It prints what it finds
// and exits through the debug device's MMIO exit register with a status
// whose bits name the failed checks (0 = all passed).
        .code64
        .text
        .globl _start
_start:
        xor     %r15, %r15              // failure bits
        lea     hello(%rip), %rsi
        call    puts

        // 1: EFER.LMA must be set.
        mov     $0xc0000080, %ecx
        rdmsr
        test    $0x400, %eax
        jnz     1f
        or      $1, %r15
        lea     fail_lma(%rip), %rsi
        call    puts
        jmp     2f
1:      lea     ok_lma(%rip), %rsi
        call    puts
2:
        // 2: RAM above 4 GiB holds what we write (two pages apart).
        movabs  $0x100001000, %rdi
        movabs  $0x5a5aa5a512345678, %rax
        mov     %rax, (%rdi)
        not     %rax
        mov     %rax, 0x1000(%rdi)
        not     %rax
        cmp     %rax, (%rdi)
        jne     3f
        not     %rax
        cmp     %rax, 0x1000(%rdi)
        jne     3f
        lea     ok_high(%rip), %rsi
        call    puts
        jmp     4f
3:      or      $2, %r15
        lea     fail_high(%rip), %rsi
        call    puts
4:
        // 3: MMIO scratch register round trip and write counter.
        mov     $0xfef00000, %edi
        movabs  $0x1122334455667788, %rax
        mov     %rax, 8(%rdi)
        mov     8(%rdi), %rbx
        cmp     %rax, %rbx
        jne     5f
        mov     0x10(%rdi), %rbx        // one MMIO write so far
        cmp     $1, %rbx
        jne     5f
        lea     ok_mmio(%rip), %rsi
        call    puts
        jmp     6f
5:      or      $4, %r15
        lea     fail_mmio(%rip), %rsi
        call    puts
6:
        // 4: port read: the UART's line status says the transmitter is empty.
        mov     $0x3fd, %dx
        in      %dx, %al
        test    $0x20, %al
        jnz     7f
        or      $8, %r15
        lea     fail_pio(%rip), %rsi
        call    puts
        jmp     8f
7:      lea     ok_pio(%rip), %rsi
        call    puts
8:
        mov     $0xfef00000, %edi
        mov     %r15d, (%rdi)           // MMIO exit with the failure bits
        hlt
        jmp     8b

// puts: write the NUL-terminated string at %rsi to COM1.
puts:
        mov     $0x3f8, %dx
1:      lodsb
        test    %al, %al
        jz      2f
        out     %al, %dx
        jmp     1b
2:      ret

hello:     .asciz "tiny64: hello from long mode\n"
ok_lma:    .asciz "tiny64: EFER.LMA set\n"
fail_lma:  .asciz "tiny64: FAIL: EFER.LMA clear\n"
ok_high:   .asciz "tiny64: RAM above 4 GiB ok\n"
fail_high: .asciz "tiny64: FAIL: RAM above 4 GiB\n"
ok_mmio:   .asciz "tiny64: MMIO scratch ok\n"
fail_mmio: .asciz "tiny64: FAIL: MMIO scratch\n"
ok_pio:    .asciz "tiny64: port read ok\n"
fail_pio:  .asciz "tiny64: FAIL: port read\n"
