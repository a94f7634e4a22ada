# The warm-up guest's instruction lists (see warmup.c): each function runs every form of a
# group once, so that the host's interpreter has seen each of its cases before it first
# compiles its run loop. In assembly because a compiler emits only the forms it likes: every
# 32-bit form is written under norvc, every compressed one by its c. name.
#
# A trap the guest provokes on purpose resumes 4 bytes after the instruction (warmup.c's
# handlers), so a compressed instruction that may trap is followed by a c.nop.

    .equ RT_ECALL_RETURN, 0x52540001  # as in runtime.h
    .text
    .option norvc

# void warm_integer(uint32_t a, uint32_t b): the RV32I and M register and immediate forms on
# a0 and a1, each branch (taken or not, as the operands decide), and the compressed forms.
    .globl warm_integer
    .balign 4
warm_integer:
    add t0, a0, a1
    sub t0, a0, a1
    sll t0, a0, a1
    slt t0, a0, a1
    sltu t0, a0, a1
    xor t0, a0, a1
    srl t0, a0, a1
    sra t0, a0, a1
    or t0, a0, a1
    and t0, a0, a1
    mul t0, a0, a1
    mulh t0, a0, a1
    mulhsu t0, a0, a1
    mulhu t0, a0, a1
    div t0, a0, a1
    divu t0, a0, a1
    rem t0, a0, a1
    remu t0, a0, a1
    addi t0, a0, -2047
    slti t0, a0, 5
    sltiu t0, a0, -5
    xori t0, a0, 0x555
    ori t0, a0, -256
    andi t0, a0, 0x7f0
    slli t0, a0, 31
    srli t0, a0, 7
    srai t0, a0, 13
    lui t0, 0x80001
    auipc t0, 0xfffff
    add zero, a0, a1                  # rd = x0: the loop's sink register
    beq a0, a1, 1f
1:  bne a0, a1, 1f
1:  blt a0, a1, 1f
1:  bge a0, a1, 1f
1:  bltu a0, a1, 1f
1:  bgeu a0, a1, 1f
1:  jal t1, 1f
1:  la t2, 1f
    jalr t1, 0(t2)
1:  fence
    fence.i
    .option rvc
    mv t1, ra                          # c.mv (ra is linked by the jumps below)
    mv a2, a0
    mv a3, a1
    c.addi a2, -7
    c.li a4, 31
    c.li a5, 0
    c.lui a5, 0x1f
    c.andi a2, 13
    c.slli a2, 3
    c.srli a2, 5
    c.srai a3, 1
    c.add a2, a3
    c.sub a2, a3
    c.xor a2, a3
    c.or a2, a3
    c.and a2, a3
    c.li a5, 0
    c.beqz a5, 1f
1:  c.bnez a5, 1f
1:  c.beqz a4, 1f
1:  c.bnez a4, 1f
1:  c.j 1f
1:  c.jal 1f
1:  la t2, 1f
    c.jalr t2
1:  la t2, 1f
    c.jr t2
1:  c.addi16sp sp, -32
    c.addi4spn a2, sp, 8
    c.swsp a0, 4(sp)
    c.lwsp a2, 4(sp)
    c.addi16sp sp, 32
    c.nop
    mv ra, t1
    c.jr ra
    .option norvc

# void warm_loads(uint32_t address): each load width from a0 (the compressed one from a0 + 4).
    .globl warm_loads
    .balign 4
warm_loads:
    lb t0, 0(a0)
    lbu t0, 0(a0)
    lh t0, 0(a0)
    lhu t0, 0(a0)
    lw t0, 0(a0)
    .option rvc
    c.lw a1, 4(a0)
    c.nop
    .option norvc
    ret

# void warm_stores(uint32_t address, uint32_t value): each store width to a0 (the compressed one to a0 + 4).
    .globl warm_stores
    .balign 4
warm_stores:
    sb a1, 0(a0)
    sh a1, 0(a0)
    sw a1, 0(a0)
    .option rvc
    c.sw a1, 4(a0)
    c.nop
    .option norvc
    ret

# uint32_t warm_load_word(uint32_t address), void warm_store_word(uint32_t address): one
# access, for the faults (a trap costs some 70 instructions: one of each kind is enough).
    .globl warm_load_word
    .balign 4
warm_load_word:
    lw a0, 0(a0)
    ret
    .globl warm_store_word
warm_store_word:
    sw zero, 0(a0)
    ret

# void warm_atomics(uint32_t address): LR/SC (one that succeeds, one that fails) and each AMO.
    .globl warm_atomics
    .balign 4
warm_atomics:
    li a1, 0x80000005
    lr.w t0, (a0)
    sc.w t1, a1, (a0)
    sc.w t1, a1, (a0)
    amoswap.w t0, a1, (a0)
    amoadd.w t0, a1, (a0)
    amoxor.w t0, a1, (a0)
    amoand.w t0, a1, (a0)
    amoor.w t0, a1, (a0)
    amomin.w t0, a1, (a0)
    amomax.w t0, a1, (a0)
    amominu.w t0, a1, (a0)
    amomaxu.w.aqrl t0, a1, (a0)
    ret

# void warm_float_memory(uint32_t address): each F and D load and store at a0 (8-aligned for
# the 32-bit forms, a0 + 8 for the compressed ones, sp-relative ones on the stack).
    .globl warm_float_memory
    .balign 4
warm_float_memory:
    flw ft0, 0(a0)
    fsw ft0, 0(a0)
    fld ft1, 0(a0)
    fsd ft1, 0(a0)
    .option rvc
    c.flw fa0, 8(a0)
    c.nop
    c.fsw fa0, 8(a0)
    c.nop
    c.fld fa1, 8(a0)
    c.nop
    c.fsd fa1, 8(a0)
    c.nop
    c.addi16sp sp, -16
    c.fswsp fa0, 0(sp)
    c.flwsp fa0, 0(sp)
    c.fsdsp fa1, 8(sp)
    c.fldsp fa1, 8(sp)
    c.addi16sp sp, 16
    .option norvc
    ret

# void warm_float_one(void): one F instruction with the dynamic rounding mode (it traps with
# the FPU off, or with a reserved mode in frm).
    .globl warm_float_one
    .balign 4
warm_float_one:
    fadd.s ft0, ft0, ft0
    ret

# void warm_float_ops(const uint32_t *operands, uint32_t integer): the F and D operations on
# two doubles (operands[0..3]) and two singles (operands[4], [5]), with static and dynamic
# rounding modes, conversions from `integer`, and the fcsr CSRs.
    .globl warm_float_ops
    .balign 4
warm_float_ops:
    fld fa0, 0(a0)
    fld fa1, 8(a0)
    flw fa2, 16(a0)
    flw fa3, 20(a0)
    fadd.s fa4, fa2, fa3
    fsub.s fa4, fa2, fa3, rtz
    fmul.s fa4, fa2, fa3, rdn
    fdiv.s fa4, fa2, fa3, rup
    fsqrt.s fa4, fa2, rmm
    fmin.s fa4, fa2, fa3
    fmax.s fa4, fa2, fa3
    fsgnj.s fa4, fa2, fa3
    fsgnjn.s fa4, fa2, fa3
    fsgnjx.s fa4, fa2, fa3
    fmadd.s fa4, fa2, fa3, fa2
    fmsub.s fa4, fa2, fa3, fa2
    fnmsub.s fa4, fa2, fa3, fa2
    fnmadd.s fa4, fa2, fa3, fa2
    fcvt.w.s t0, fa2, rtz
    fcvt.wu.s t0, fa2, rtz
    fcvt.s.w fa4, a1
    fcvt.s.wu fa4, a1
    fmv.x.w t0, fa2
    fmv.w.x fa4, a1
    feq.s t0, fa2, fa3
    flt.s t0, fa2, fa3
    fle.s t0, fa2, fa3
    fclass.s t0, fa2
    fadd.d fa4, fa0, fa1
    fsub.d fa4, fa0, fa1, rtz
    fmul.d fa4, fa0, fa1, rdn
    fdiv.d fa4, fa0, fa1, rup
    fsqrt.d fa4, fa0, rmm
    fmin.d fa4, fa0, fa1
    fmax.d fa4, fa0, fa1
    fsgnj.d fa4, fa0, fa1
    fsgnjn.d fa4, fa0, fa1
    fsgnjx.d fa4, fa0, fa1
    fmadd.d fa4, fa0, fa1, fa0
    fmsub.d fa4, fa0, fa1, fa0
    fnmsub.d fa4, fa0, fa1, fa0
    fnmadd.d fa4, fa0, fa1, fa0
    fcvt.w.d t0, fa0, rtz
    fcvt.wu.d t0, fa0, rtz
    fcvt.d.w fa4, a1
    fcvt.d.wu fa4, a1
    fcvt.s.d fa4, fa0
    fcvt.d.s fa4, fa2
    feq.d t0, fa0, fa1
    flt.d t0, fa0, fa1
    fle.d t0, fa0, fa1
    fclass.d t0, fa0
    frcsr t0
    fsrm t1, a1
    frflags t1
    fsflags t1, zero
    fscsr t0
    ret

# void warm_traps(uint32_t misaligned): the exceptions an instruction raises in M-mode: ecall,
# ebreak (both forms), an instruction illegal at decode and one illegal when it runs (a CSR
# that does not exist, a read-only one written), access faults on a load, a store and a fetch
# (which resumes at ra), and misaligned atomics.
    .globl warm_traps
    .balign 4
warm_traps:
    mv t2, ra
    li a7, 0
    ecall
    ebreak
    .option rvc
    c.ebreak
    c.nop
    .option norvc
    .word 0                           # a zero halfword is illegal
    csrr t0, 0x7ff
    csrw cycle, t0
    lw t0, 0(zero)
    sw t0, 0(zero)
    jalr ra, 0(zero)
    lr.w t0, (a0)
    amoadd.w t0, t0, (a0)
    mv ra, t2
    ret

# void warm_user(uint32_t page): U-mode code (reached through a U mapping of the program, so
# it must be position independent): loads and stores to a U page, the counters, an ecall, an
# illegal CSR access and a page fault (all three delegated to S), then the return ecall.
    .globl warm_user
    .balign 4
warm_user:
    lw t0, 0(a0)
    sw t0, 4(a0)
    lbu t0, 1(a0)
    sh t0, 2(a0)
    rdtime t0
    rdcycle t0
    rdinstret t0
    li a7, 0
    ecall
    csrr t0, sstatus
    li t1, 0x44004000                 # warmup.c: VA_UNMAPPED
    lw t0, 0(t1)
    li a0, 0
    li a7, RT_ECALL_RETURN
    ecall
