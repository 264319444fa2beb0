// Tiny real-mode guest that does nothing for ever: interrupts off, halted.
// A VM that stays up with no guest activity, for tests that drive passage
// from outside (QMP hotplug under fault injection, faults-real.sh) and end
// it with QMP quit or a signal.
        .code16
        .text
        .globl _start
_start:
        cli
1:      hlt
        jmp     1b
