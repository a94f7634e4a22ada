# Running code in S-mode or U-mode and coming back to M-mode, and the S-mode trap entry.
# See runtime.h for the C-side contracts.

    .equ RT_ECALL_RETURN, 0x52540001  # keep equal to RT_ECALL_RETURN in runtime.h
    .equ SAVE_BYTES, 64

# uint32_t rt_run_in_mode(uint32_t mode, uint32_t entry, uint32_t arg, uint32_t stack_top)
# Saves the callee-saved registers on the M-mode stack, points mscratch at that stack (for
# traps from the lower mode), and mrets to `entry` in `mode` with a0 = arg, sp = stack_top
# (or rt_lower_stack's top when 0) and ra = rt_lower_return. The lower mode comes back by an
# ecall with a7 = RT_ECALL_RETURN, which rt_trap turns into a call of rt_mode_return.
    .text
    .globl rt_run_in_mode
rt_run_in_mode:
    addi sp, sp, -SAVE_BYTES
    sw ra, 0(sp)
    sw s0, 4(sp)
    sw s1, 8(sp)
    sw s2, 12(sp)
    sw s3, 16(sp)
    sw s4, 20(sp)
    sw s5, 24(sp)
    sw s6, 28(sp)
    sw s7, 32(sp)
    sw s8, 36(sp)
    sw s9, 40(sp)
    sw s10, 44(sp)
    sw s11, 48(sp)
    sw gp, 52(sp)
    sw tp, 56(sp)
    csrr t0, mstatus
    sw t0, 60(sp)
    la t0, rt_mode_saved_sp
    sw sp, 0(t0)
    csrw mscratch, sp
    csrw mepc, a1
    li t0, 0x1800                     # mstatus.MPP = mode
    csrc mstatus, t0
    slli a0, a0, 11
    and a0, a0, t0
    csrs mstatus, a0
    mv a0, a2
    la ra, rt_lower_return
    mv sp, a3
    bnez sp, 1f
    la sp, rt_lower_stack_top
1:  mret

# Where a lower-mode function returns to: hand its a0 back to M-mode.
    .globl rt_lower_return
rt_lower_return:
    li a7, RT_ECALL_RETURN
    ecall
1:  j 1b

# void rt_mode_return(uint32_t value): called by rt_trap in M-mode on the return ecall.
# Drops the trap frames, restores what rt_run_in_mode saved, and the caller's mstatus.MIE
# (the trap cleared it), then returns `value` from rt_run_in_mode.
    .globl rt_mode_return
rt_mode_return:
    la t0, rt_mode_saved_sp
    lw sp, 0(t0)
    csrw mscratch, zero
    lw t0, 60(sp)
    andi t0, t0, 8
    csrs mstatus, t0
    lw ra, 0(sp)
    lw s0, 4(sp)
    lw s1, 8(sp)
    lw s2, 12(sp)
    lw s3, 16(sp)
    lw s4, 20(sp)
    lw s5, 24(sp)
    lw s6, 28(sp)
    lw s7, 32(sp)
    lw s8, 36(sp)
    lw s9, 40(sp)
    lw s10, 44(sp)
    lw s11, 48(sp)
    lw gp, 52(sp)
    lw tp, 56(sp)
    addi sp, sp, SAVE_BYTES
    ret

# S-mode trap entry, the twin of rt_trap_entry (crt0.S) with sscratch, rt_strap and sret.
# sscratch = 0 means "keep the interrupted stack"; a test that lets U-mode traps go to S
# with a U stack S cannot use puts an S stack in sscratch first.
    .equ FRAME_BYTES, 80
    .equ FRAME_SP, 64
    .align 4
    .globl rt_strap_entry
rt_strap_entry:
    csrrw sp, sscratch, sp
    bnez sp, 1f
    csrrw sp, sscratch, sp
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
    csrrw t0, sscratch, zero
    bnez t0, 2f
    addi t0, sp, FRAME_BYTES
2:  sw t0, FRAME_SP(sp)
    mv a0, sp
    call rt_strap
    csrr t0, sstatus                  # returning to U-mode (SPP = 0): re-arm sscratch
    andi t0, t0, 0x100
    bnez t0, 3f
    addi t0, sp, FRAME_BYTES
    csrw sscratch, t0
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
    sret

    .bss
    .align 4
    .globl rt_mode_saved_sp
rt_mode_saved_sp:
    .space 4
    .align 4
rt_lower_stack:
    .space 8192
rt_lower_stack_top:
