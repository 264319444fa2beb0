// Tiny 64-bit guest (-entry long, loaded at 0x100000) that drives a
// virtio-rng-pci at 00:03.0 the way a driver would, end to end on real KVM:
// config space through ports 0xCF8/0xCFC and through ECAM, BARs as passage
// placed them, MSI-X vector 1 programmed to LAPIC vector 0x40, the modern
// virtio-pci handshake, one 32-byte request, and the MSI-X interrupt
// delivered through KVM's GSI routing and irqfd. Exits through port 0x501
// with 0 on success, or the number of the step that failed.
        .code64
        .text
        .globl _start

        .set ECAM_HB,   0xe0000000
        .set ECAM_RNG,  0xe0018000      // bus 0, slot 3, function 0
        .set DESC,      0x200000
        .set AVAIL,     0x201000
        .set USED,      0x202000
        .set BUFFER,    0x203000
        .set LAPIC,     0xfee00000
        .set VECTOR,    0x40

_start:
        // 1: the host bridge through the config ports.
        mov     $0x80000000, %eax
        mov     $0xcf8, %dx
        outl    %eax, %dx
        mov     $0xcfc, %dx
        inl     %dx, %eax
        cmp     $0x29c08086, %eax
        mov     $1, %al
        jne     fail
        // 2: the host bridge and the rng through ECAM.
        mov     $ECAM_HB, %esi
        cmpl    $0x29c08086, (%rsi)
        mov     $2, %al
        jne     fail
        mov     $ECAM_RNG, %esi
        cmpl    $0x10441af4, (%rsi)
        mov     $3, %al
        jne     fail
        // BAR 4 (64-bit) -> %rbx, BAR 1 (32-bit) -> %r12. Both must be set.
        mov     0x20(%rsi), %ebx
        and     $~0xf, %ebx
        mov     0x24(%rsi), %eax
        shl     $32, %rax
        or      %rax, %rbx
        mov     0x14(%rsi), %r12d
        and     $~0xf, %r12d
        test    %rbx, %rbx
        mov     $4, %al
        jz      fail
        test    %r12, %r12
        jz      fail
        // Memory decoding must be on (passage acts as the firmware).
        testw   $2, 0x4(%rsi)
        mov     $5, %al
        jz      fail

        // 6: find the MSI-X capability.
        movzbl  0x34(%rsi), %ecx
1:      test    %ecx, %ecx
        mov     $6, %al
        jz      fail
        cmpb    $0x11, (%rsi,%rcx)
        je      2f
        movzbl  1(%rsi,%rcx), %ecx
        jmp     1b
2:      mov     %rcx, %r13              // MSI-X capability offset
        mov     4(%rsi,%rcx), %eax      // table offset | BIR
        and     $~7, %eax
        add     %rax, %r12              // MSI-X table
        // Vector 1 -> APIC 0, vector 0x40; unmask it; enable MSI-X.
        movl    $LAPIC, 16(%r12)
        movl    $0, 20(%r12)
        movl    $VECTOR, 24(%r12)
        movl    $0, 28(%r12)
        movw    $0x8000, 2(%rsi,%r13)

        // IDT entry for the vector; the handler counts and EOIs.
        lea     idt(%rip), %rdi
        lea     handler(%rip), %rax
        add     $(VECTOR * 16), %rdi
        mov     %ax, (%rdi)
        movw    $0x10, 2(%rdi)
        movw    $0x8e00, 4(%rdi)
        shr     $16, %rax
        mov     %ax, 6(%rdi)
        shr     $16, %rax
        mov     %eax, 8(%rdi)
        movl    $0, 12(%rdi)
        lidt    idtr(%rip)
        mov     $LAPIC, %edi            // (zero-extended: above 2 GiB)
        movl    $0x1ff, 0xf0(%rdi)      // spurious vector register: APIC on
        sti

        // Virtio: ACKNOWLEDGE | DRIVER, VERSION_1, FEATURES_OK.
        movb    $3, 0x14(%rbx)
        movl    $1, 0x8(%rbx)           // driver_feature_select = 1
        movl    $1, 0xc(%rbx)           // VERSION_1 (bit 32)
        movb    $0xb, 0x14(%rbx)
        testb   $8, 0x14(%rbx)
        mov     $7, %al
        jz      fail
        // Queue 0: 8 entries, rings in RAM, MSI-X vector 1.
        movw    $0, 0x16(%rbx)
        movw    $8, 0x18(%rbx)
        movq    $DESC, 0x20(%rbx)
        movq    $AVAIL, 0x28(%rbx)
        movq    $USED, 0x30(%rbx)
        movw    $0xffff, 0x10(%rbx)     // no config-change vector
        movw    $1, 0x1a(%rbx)
        cmpw    $1, 0x1a(%rbx)
        mov     $8, %al
        jne     fail
        movw    $1, 0x1c(%rbx)          // queue_enable
        cmpw    $1, 0x1c(%rbx)
        mov     $9, %al
        jne     fail
        movb    $0xf, 0x14(%rbx)        // DRIVER_OK

        // One request: descriptor 0 = 32 device-writable bytes.
        movq    $BUFFER, DESC
        movl    $32, DESC + 8
        movw    $2, DESC + 12
        movw    $0, AVAIL + 4
        movw    $1, AVAIL + 2
        movw    $0, 0x3000(%rbx)        // notify queue 0

        // 10: the interrupt arrives (bounded wait).
        mov     $200000000, %rcx
3:      cmpl    $0, irqs(%rip)
        jne     4f
        pause
        dec     %rcx
        jnz     3b
        mov     $10, %al
        jmp     fail
4:      // 11: the used ring says 32 bytes; 12: they are not all zero.
        cmpw    $1, USED + 2
        mov     $11, %al
        jne     fail
        cmpl    $32, USED + 8
        jne     fail
        mov     BUFFER, %rax
        or      BUFFER + 8, %rax
        or      BUFFER + 16, %rax
        or      BUFFER + 24, %rax
        mov     $12, %al
        jz      fail
        // 13: exactly one interrupt.
        cmpl    $1, irqs(%rip)
        mov     $13, %al
        jne     fail
        xor     %al, %al
fail:   mov     $0x501, %dx
        out     %al, %dx
        hlt

handler:
        push    %rdi
        incl    irqs(%rip)
        mov     $LAPIC, %edi
        movl    $0, 0xb0(%rdi)          // EOI
        pop     %rdi
        iretq

        .data
        .balign 16
idtr:   .word   256 * 16 - 1
        .quad   idt
irqs:   .long   0
        .balign 16
idt:    .fill   256 * 16, 1, 0
