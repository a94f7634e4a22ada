# Entry for bare-metal guests: M-mode, a0 = hart id, a1 = device tree (as QEMU's reset code passes).
    .section .text.init
    .globl _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __stack_top
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 1b
2:  csrw mscratch, zero            # 0: traps taken in M-mode keep their stack (see below)
    la t0, rt_trap_entry
    csrw mtvec, t0
    call main
    call rt_exit
3:  j 3b

# Default M-mode trap entry: save the caller-saved registers and sp in a struct trap_frame,
# call rt_trap(frame), restore, mret.
#
# Stack choice: mscratch is 0 while M-mode runs. rt_run_in_mode puts an M-mode stack in it
# before dropping to S or U, so a trap from a lower mode (whose sp may be a virtual address,
# or no stack at all) lands on that stack; a trap taken in M-mode keeps the interrupted sp.
# While the handler runs mscratch is 0 again, and it is set back on the way out if the trap
# returns to a lower mode.
    .equ FRAME_BYTES, 80
    .equ FRAME_SP, 64
    .align 4
    .globl rt_trap_entry
rt_trap_entry:
    csrrw sp, mscratch, sp
    bnez sp, 1f
    csrrw sp, mscratch, sp          # from M-mode: back to the interrupted stack
1:  addi sp, sp, -FRAME_BYTES
    sw ra, 0(sp)
    sw t0, 4(sp)
    sw t1, 8(sp)
    sw t2, 12(sp)
    sw a0, 16(sp)
    sw a1, 20(sp)
    sw a2, 24(sp)
    sw a3, 28(sp)
    sw a4, 32(sp)
    sw a5, 36(sp)
    sw a6, 40(sp)
    sw a7, 44(sp)
    sw t3, 48(sp)
    sw t4, 52(sp)
    sw t5, 56(sp)
    sw t6, 60(sp)
    csrrw t0, mscratch, zero        # the lower mode's sp, or 0 if the trap came from M-mode
    bnez t0, 2f
    addi t0, sp, FRAME_BYTES
2:  sw t0, FRAME_SP(sp)
    mv a0, sp
    call rt_trap
    csrr t0, mstatus                # returning to a lower mode: re-arm mscratch
    li t1, 0x1800
    and t0, t0, t1
    beq t0, t1, 3f
    addi t0, sp, FRAME_BYTES
    csrw mscratch, t0
3:  lw ra, 0(sp)
    lw t0, 4(sp)
    lw t1, 8(sp)
    lw t2, 12(sp)
    lw a0, 16(sp)
    lw a1, 20(sp)
    lw a2, 24(sp)
    lw a3, 28(sp)
    lw a4, 32(sp)
    lw a5, 36(sp)
    lw a6, 40(sp)
    lw a7, 44(sp)
    lw t3, 48(sp)
    lw t4, 52(sp)
    lw t5, 56(sp)
    lw t6, 60(sp)
    lw sp, FRAME_SP(sp)
    mret
