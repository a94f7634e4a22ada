/*
 * understudy-sbi: entry point, trap vector and CSR probes (M-mode, RV32IMA, no C).
 *
 * Whoever starts the hart (QEMU's reset vector, or understudy's board) jumps to _start with
 *   a0 = hart id, a1 = physical address of the flattened device tree,
 *   a2 = address of a fw_dynamic_info record (QEMU always passes one; it names the kernel's
 *        entry point and mode), or anything else when there is none.
 * Those three values are handed unchanged to firmware_main() in sbi.c.
 */
    .section .text.entry, "ax"
    .globl _start
_start:
    csrw    mie, zero
    la      sp, firmware_stack_top
    csrw    mscratch, sp
    la      t0, trap_entry
    csrw    mtvec, t0
    /* Only hart 0 boots; the board has one hart, any other one parks. */
    bnez    a0, park
    /* Zero .bss (the stack lives there too, below its top: zeroing it is harmless now). */
    la      t0, bss_start
    la      t1, bss_end
1:  bgeu    t0, t1, 2f
    sw      zero, 0(t0)
    addi    t0, t0, 4
    j       1b
2:  call    firmware_main
    /* firmware_main never returns; if it does, stop the machine. */
park:
    wfi
    j       park

/*
 * Every M-mode trap lands here. The interrupted code runs in S or U mode, so its sp cannot be
 * trusted: swap it with mscratch, which always holds the top of the firmware stack while a
 * lower mode runs. The frame is 32 words, x0..x31 by number, so the C handler can read and
 * write a0..a7 by register index.
 */
    .section .text, "ax"
    .balign 4
    .globl trap_entry
trap_entry:
    csrrw   sp, mscratch, sp
    addi    sp, sp, -128
    sw      x1, 4(sp)
    sw      x3, 12(sp)
    sw      x4, 16(sp)
    sw      x5, 20(sp)
    sw      x6, 24(sp)
    sw      x7, 28(sp)
    sw      x8, 32(sp)
    sw      x9, 36(sp)
    sw      x10, 40(sp)
    sw      x11, 44(sp)
    sw      x12, 48(sp)
    sw      x13, 52(sp)
    sw      x14, 56(sp)
    sw      x15, 60(sp)
    sw      x16, 64(sp)
    sw      x17, 68(sp)
    sw      x18, 72(sp)
    sw      x19, 76(sp)
    sw      x20, 80(sp)
    sw      x21, 84(sp)
    sw      x22, 88(sp)
    sw      x23, 92(sp)
    sw      x24, 96(sp)
    sw      x25, 100(sp)
    sw      x26, 104(sp)
    sw      x27, 108(sp)
    sw      x28, 112(sp)
    sw      x29, 116(sp)
    sw      x30, 120(sp)
    sw      x31, 124(sp)
    csrr    t0, mscratch
    sw      t0, 8(sp)
    mv      a0, sp
    call    handle_trap
    lw      x1, 4(sp)
    lw      x3, 12(sp)
    lw      x4, 16(sp)
    lw      x5, 20(sp)
    lw      x6, 24(sp)
    lw      x7, 28(sp)
    lw      x8, 32(sp)
    lw      x9, 36(sp)
    lw      x10, 40(sp)
    lw      x11, 44(sp)
    lw      x12, 48(sp)
    lw      x13, 52(sp)
    lw      x14, 56(sp)
    lw      x15, 60(sp)
    lw      x16, 64(sp)
    lw      x17, 68(sp)
    lw      x18, 72(sp)
    lw      x19, 76(sp)
    lw      x20, 80(sp)
    lw      x21, 84(sp)
    lw      x22, 88(sp)
    lw      x23, 92(sp)
    lw      x24, 96(sp)
    lw      x25, 100(sp)
    lw      x26, 104(sp)
    lw      x27, 108(sp)
    lw      x28, 112(sp)
    lw      x29, 116(sp)
    lw      x30, 120(sp)
    lw      x31, 124(sp)
    addi    sp, sp, 128
    csrrw   sp, mscratch, sp
    mret

/*
 * Optional CSRs are written through these probes: each points mtvec at a local landing pad
 * for the duration of one csrw, so a CPU without the register raises an illegal-instruction
 * trap that lands on the pad instead of crashing the firmware. They return 1 when the write
 * went through and 0 when it trapped. Only t0, t1 and a1 are touched.
 */
    .macro csr_probe name, csr
    .globl \name
    .balign 4
\name:
    la      t0, 1f
    csrrw   t1, mtvec, t0
    li      a1, 0
    csrw    \csr, a0
    li      a1, 1
    .balign 4
1:  csrw    mtvec, t1
    mv      a0, a1
    ret
    .endm

    csr_probe try_write_pmpcfg0, pmpcfg0
    csr_probe try_write_pmpaddr0, pmpaddr0
    csr_probe try_write_pmpaddr1, pmpaddr1
    csr_probe try_write_mcounteren, mcounteren
    csr_probe try_write_menvcfgh, menvcfgh
