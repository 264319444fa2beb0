// Tiny real-mode guest: prints a line on COM1 and exits through the debug
// port with status 0. passage loads it at 0x10000 with CS=DS=0x1000, IP=0.
        .code16
        .text
        .globl _start
_start:
        mov     $msg, %si
        mov     $0x3f8, %dx
1:      lodsb
        test    %al, %al
        jz      2f
        out     %al, %dx
        jmp     1b
2:      mov     $0x501, %dx         // debug exit port
        xor     %al, %al
        out     %al, %dx
        hlt
msg:    .asciz  "tiny16: hello from real mode\n"
