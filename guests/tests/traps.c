/* Exceptions and the privileged trap machinery (privileged spec, "Machine-Level ISA" and
 * "Supervisor-Level ISA"): causes, xepc and xtval for each kind of synchronous trap from
 * M, S and U; delegation through medeleg; vectored mtvec; what mret and sret do to
 * mstatus; the TSR, TW and TVM traps; CSR privilege; mcounteren/scounteren.
 *
 * Where the spec lets xtval be zero or something else, the test asserts QEMU 7.2's choice
 * (understudy follows QEMU): illegal instruction -> the instruction's bits (16 of them for
 * a 16-bit encoding); ebreak and ecall -> 0; access faults -> the address. With C there
 * are no misaligned jump targets (IALIGN = 16): isa_c checks that jumps to 4n+2 work.
 * Not asserted, because QEMU 7.2 is wrong there: CSRRS/CSRRC with rs1 != x0 holding
 * zero on a read-only CSR (the spec says illegal; QEMU lets it through). */
#include "runtime.h"

/* Test bodies in assembly (ASM_STUB, runtime.h), so that the instruction under test and
 * its address are known. They are run in M, S or U; a trap resumes after that instruction. */
ASM_STUB(do_ecall, "li a7, 0", "ecall");
ASM_STUB(do_ebreak, "", "ebreak");
ASM_STUB(ill_ones, "", ".word 0xffffffff");
ASM_STUB(ill_zero, "", ".word 0x00000000");
ASM_STUB(ill_funct7, "", ".word 0x40001033");      /* OP with funct7 0x20 and funct3 1: no such instruction */
ASM_STUB(ill_float, "", ".word 0x00000053");       /* fadd.s: F is not implemented */
ASM_STUB(ill_16bit, "", ".word 0x00019c01");       /* c.subw (RV64 only: reserved on RV32), then c.nop */
ASM_STUB(ill_no_csr, "", "csrr a0, 0x7ff");        /* no such CSR */
ASM_STUB(ill_write_mvendorid, "", "csrw mvendorid, a0");
ASM_STUB(ill_write_mhartid_x0, "", "csrrw zero, mhartid, zero");
ASM_STUB(ill_write_cycle, "", "csrw cycle, a0");
ASM_STUB(read_mvendorid_x0, "", "csrrs a0, mvendorid, zero");  /* rs1 = x0: no write, no trap */
ASM_STUB(read_mhartid_imm0, "", "csrrsi a0, mhartid, 0");
ASM_STUB(read_marchid_clear0, "", "csrrci a0, marchid, 0");
ASM_STUB(load_word, "", "lw a0, 0(a0)");
ASM_STUB(load_half, "", "lh a0, 0(a0)");
ASM_STUB(load_byte, "", "lbu a0, 0(a0)");
ASM_STUB(store_word, "", "sw a0, 0(a0)");
ASM_STUB(store_half, "", "sh a0, 0(a0)");
ASM_STUB(store_byte, "", "sb a0, 0(a0)");
ASM_STUB(jump_to, "", "jr a0");                    /* a fetch fault resumes at ra: back to the caller */
ASM_STUB(do_sret, "", "sret");
ASM_STUB(do_mret, "", "mret");
ASM_STUB(do_wfi, "", "wfi");
ASM_STUB(do_sfence, "", "sfence.vma");
ASM_STUB(read_satp, "", "csrr a0, satp");
ASM_STUB(read_mstatus, "", "csrr a0, mstatus");
ASM_STUB(read_sstatus, "", "csrr a0, sstatus");
ASM_STUB(read_mscratch, "", "csrr a0, mscratch");
ASM_STUB(read_sscratch, "", "csrr a0, sscratch");
ASM_STUB(read_medeleg, "", "csrr a0, medeleg");
ASM_STUB(read_mepc, "", "csrr a0, mepc");
ASM_STUB(write_mtvec, "", "csrw mtvec, a0");
ASM_STUB(write_stvec, "", "csrw stvec, a0");
ASM_STUB(read_cycle, "", "csrr a0, cycle");
ASM_STUB(read_time, "", "csrr a0, time");
ASM_STUB(read_instret, "", "csrr a0, instret");
ASM_STUB(read_cycleh, "", "csrr a0, cycleh");
ASM_STUB(read_timeh, "", "csrr a0, timeh");
ASM_STUB(read_instreth, "", "csrr a0, instreth");
static const char *const mode_names[] = {"U", "S", "?", "M"}; /* by privilege level */
static const uint32_t all_modes[] = {MODE_U, MODE_S, MODE_M};

static uint32_t run(uint32_t mode, uint32_t (*fn)(uint32_t), uint32_t arg) {
    if (mode == MODE_M) return fn(arg);
    return rt_run_in_mode(mode, (uint32_t)(uintptr_t)fn, arg, 0);
}

static uint32_t address_of(const uint32_t *p) { return (uint32_t)(uintptr_t)p; }

/* Runs fn in mode and expects exactly one trap into M with these cause, epc and tval. */
static void expect_mtrap(const char *name, uint32_t mode, uint32_t (*fn)(uint32_t), uint32_t arg, uint32_t cause,
                         uint32_t epc, uint32_t tval) {
    char what[64];
    rt_snprintf(what, sizeof what, "%s from %s", name, mode_names[mode]);
    rt_clear_notes();
    run(mode, fn, arg);
    rt_expect(what, "traps", rt_mnote.count, 1);
    rt_expect(what, "mcause", rt_mnote.cause, cause);
    rt_expect(what, "mepc", rt_mnote.epc, epc);
    rt_expect(what, "mtval", rt_mnote.tval, tval);
    rt_expect(what, "previous mode", rt_mnote.from_mode, mode);
}

static void expect_no_trap(const char *name, uint32_t mode, uint32_t (*fn)(uint32_t), uint32_t arg) {
    char what[64];
    rt_snprintf(what, sizeof what, "%s from %s", name, mode_names[mode]);
    rt_clear_notes();
    run(mode, fn, arg);
    rt_expect(what, "traps", rt_mnote.count + rt_snote.count, 0);
}

static void expect_illegal(const char *name, uint32_t mode, uint32_t (*fn)(uint32_t), const uint32_t *at) {
    expect_mtrap(name, mode, fn, 0, CAUSE_ILLEGAL, address_of(at), *at);
}

static void test_illegal_instructions(void) {
    for (unsigned m = 0; m < 3; m++) {
        uint32_t mode = all_modes[m];
        expect_illegal("all ones", mode, ill_ones, ill_ones_at);
        expect_illegal("all zeros", mode, ill_zero, ill_zero_at);
        expect_illegal("bad funct7", mode, ill_funct7, ill_funct7_at);
        expect_illegal("fadd.s", mode, ill_float, ill_float_at);
        expect_illegal("missing CSR", mode, ill_no_csr, ill_no_csr_at);
    }
    /* A 16-bit encoding: mtval holds its 16 bits only (the trap note resumes 4 bytes on, after the c.nop). */
    expect_mtrap("16-bit encoding", MODE_M, ill_16bit, 0, CAUSE_ILLEGAL, address_of(ill_16bit_at), 0x9c01);
    /* Writing a read-only CSR is illegal even in M-mode, and CSRRW always writes. */
    expect_illegal("csrw mvendorid", MODE_M, ill_write_mvendorid, ill_write_mvendorid_at);
    expect_illegal("csrrw zero, mhartid, zero", MODE_M, ill_write_mhartid_x0, ill_write_mhartid_x0_at);
    expect_illegal("csrw cycle", MODE_M, ill_write_cycle, ill_write_cycle_at);
    /* CSRRS/CSRRC with rs1 = x0, and the immediate forms with 0, do not write. */
    expect_no_trap("csrrs mvendorid, x0", MODE_M, read_mvendorid_x0, 0);
    expect_no_trap("csrrsi mhartid, 0", MODE_M, read_mhartid_imm0, 0);
    expect_no_trap("csrrci marchid, 0", MODE_M, read_marchid_clear0, 0);
    CHECK_EQ(read_mhartid_imm0(0), 0);
}

static void test_ecall_ebreak(void) {
    expect_mtrap("ecall", MODE_M, do_ecall, 0, CAUSE_ECALL_M, address_of(do_ecall_at), 0);
    expect_mtrap("ecall", MODE_S, do_ecall, 0, CAUSE_ECALL_S, address_of(do_ecall_at), 0);
    expect_mtrap("ecall", MODE_U, do_ecall, 0, CAUSE_ECALL_U, address_of(do_ecall_at), 0);
    for (unsigned m = 0; m < 3; m++) {
        uint32_t mode = all_modes[m];
        expect_mtrap("ebreak", mode, do_ebreak, 0, CAUSE_BREAKPOINT, address_of(do_ebreak_at), 0);
    }
    /* Trap entry: MPIE = the old MIE, MIE = 0, MPP = M; mret puts MIE back. No interrupt
     * is enabled in mie, so MIE = 1 is harmless here. */
    csr_write(mie, 0);
    csr_set(mstatus, MSTATUS_MIE);
    rt_clear_notes();
    do_ecall(0);
    CHECK_EQ(rt_mnote.status & (MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP), MSTATUS_MPIE | MSTATUS_MPP);
    CHECK_EQ(csr_read(mstatus) & MSTATUS_MIE, MSTATUS_MIE);
    csr_clear(mstatus, MSTATUS_MIE);
    rt_clear_notes();
    do_ecall(0);
    CHECK_EQ(rt_mnote.status & (MSTATUS_MIE | MSTATUS_MPIE), 0);
}

#define UNMAPPED 0x05000000u /* nothing on the virt board's bus there */

static void test_access_faults(void) {
    for (unsigned m = 0; m < 3; m++) {
        uint32_t mode = all_modes[m];
        expect_mtrap("lw unmapped", mode, load_word, UNMAPPED, CAUSE_LOAD_ACCESS, address_of(load_word_at), UNMAPPED);
        expect_mtrap("lh unmapped", mode, load_half, UNMAPPED + 2, CAUSE_LOAD_ACCESS, address_of(load_half_at), UNMAPPED + 2);
        expect_mtrap("lbu unmapped", mode, load_byte, UNMAPPED + 3, CAUSE_LOAD_ACCESS, address_of(load_byte_at), UNMAPPED + 3);
        expect_mtrap("sw unmapped", mode, store_word, UNMAPPED + 8, CAUSE_STORE_ACCESS, address_of(store_word_at), UNMAPPED + 8);
        expect_mtrap("sh unmapped", mode, store_half, UNMAPPED + 6, CAUSE_STORE_ACCESS, address_of(store_half_at), UNMAPPED + 6);
        expect_mtrap("sb unmapped", mode, store_byte, UNMAPPED + 1, CAUSE_STORE_ACCESS, address_of(store_byte_at), UNMAPPED + 1);
        /* An instruction fetch fault is reported at the target: mepc = mtval = it. */
        expect_mtrap("fetch unmapped", mode, jump_to, UNMAPPED + 0x100, CAUSE_FETCH_ACCESS, UNMAPPED + 0x100, UNMAPPED + 0x100);
    }
}

/* medeleg sends exceptions from S and U to S-mode; M-mode traps never go down. That M
 * is left alone is checked by counting M traps (the M hook sees none): mcause itself
 * cannot be inspected afterwards, since getting back to M-mode takes a trap. */
static void test_delegation(void) {
    rt_note_straps();
    csr_write(medeleg, (1u << CAUSE_BREAKPOINT) | (1u << CAUSE_ILLEGAL) | (1u << CAUSE_LOAD_ACCESS));
    CHECK_EQ(csr_read(medeleg), (1u << CAUSE_BREAKPOINT) | (1u << CAUSE_ILLEGAL) | (1u << CAUSE_LOAD_ACCESS));
    struct {
        const char *what;
        uint32_t mode;
        uint32_t (*fn)(uint32_t);
        uint32_t arg, cause, epc, tval;
    } cases[] = {
        {"delegated ebreak from S", MODE_S, do_ebreak, 0, CAUSE_BREAKPOINT, address_of(do_ebreak_at), 0},
        {"delegated ebreak from U", MODE_U, do_ebreak, 0, CAUSE_BREAKPOINT, address_of(do_ebreak_at), 0},
        {"delegated illegal from U", MODE_U, ill_ones, 0, CAUSE_ILLEGAL, address_of(ill_ones_at), 0xffffffff},
        {"delegated illegal from S", MODE_S, ill_funct7, 0, CAUSE_ILLEGAL, address_of(ill_funct7_at), 0x40001033},
        {"delegated load fault from S", MODE_S, load_word, UNMAPPED, CAUSE_LOAD_ACCESS, address_of(load_word_at), UNMAPPED},
        {"delegated load fault from U", MODE_U, load_half, UNMAPPED + 2, CAUSE_LOAD_ACCESS, address_of(load_half_at),
         UNMAPPED + 2},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *what = cases[i].what;
        /* SIE = 1 going in: the trap moves it to SPIE (no S interrupt is enabled). */
        csr_set(mstatus, MSTATUS_SIE);
        rt_clear_notes();
        run(cases[i].mode, cases[i].fn, cases[i].arg);
        rt_expect(what, "S traps", rt_snote.count, 1);
        rt_expect(what, "M traps", rt_mnote.count, 0);
        rt_expect(what, "scause", rt_snote.cause, cases[i].cause);
        rt_expect(what, "sepc", rt_snote.epc, cases[i].epc);
        rt_expect(what, "stval", rt_snote.tval, cases[i].tval);
        rt_expect(what, "sstatus.SPP", (rt_snote.status & MSTATUS_SPP) != 0, cases[i].mode == MODE_S);
        rt_expect(what, "sstatus.SPIE", (rt_snote.status & MSTATUS_SPIE) != 0, 1);
        rt_expect(what, "sstatus.SIE", (rt_snote.status & MSTATUS_SIE) != 0, 0);
        rt_expect(what, "SIE after sret", (csr_read(mstatus) & MSTATUS_SIE) != 0, 1);
    }
    /* Delegation does not apply to traps taken in M-mode. */
    rt_clear_notes();
    do_ebreak(0);
    CHECK_EQ(rt_mnote.count, 1);
    CHECK_EQ(rt_snote.count, 0);
    /* Exceptions not delegated still go to M. */
    expect_mtrap("undelegated store fault", MODE_S, store_word, UNMAPPED, CAUSE_STORE_ACCESS, address_of(store_word_at),
                 UNMAPPED);
    CHECK_EQ(rt_snote.count, 0);
    csr_write(medeleg, 0);
    csr_clear(mstatus, MSTATUS_SIE);
}

/* Vectored mtvec: interrupts go to base + 4 * code, exceptions to base. Each vector entry
 * notes its number and continues into rt_trap_entry. */
volatile uint32_t vector_taken;
__asm__(
    ".text\n"
    ".balign 256\n"
    ".globl vector_table\n"
    "vector_table:\n"
    ".option push\n"
    ".option norvc\n" /* 4 bytes per entry, even in a build with C */
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
    "    j vector_entry_\\n\n"
    ".endr\n"
    ".option pop\n"
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
    "vector_entry_\\n:\n"
    "    addi sp, sp, -16\n"
    "    sw t0, 0(sp)\n"
    "    sw t1, 4(sp)\n"
    "    li t0, \\n\n"
    "    la t1, vector_taken\n"
    "    sw t0, 0(t1)\n"
    "    lw t1, 4(sp)\n"
    "    lw t0, 0(sp)\n"
    "    addi sp, sp, 16\n"
    "    j rt_trap_entry\n"
    ".endr\n");
extern const uint32_t vector_table[];

static volatile uint32_t last_cause, last_vector, hook_calls;

/* An interrupt is silenced by clearing its enable bit in mie; an exception is skipped. */
static void vectored_hook(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    (void)frame;
    (void)tval;
    hook_calls++;
    last_cause = cause;
    last_vector = vector_taken;
    if (cause & CAUSE_INTERRUPT) csr_clear(mie, 1u << (cause & 31));
    else csr_write(mepc, epc + 4);
}

static void expect_vector(const char *what, uint32_t cause, uint32_t vector) {
    rt_expect(what, "traps", hook_calls, 1);
    rt_expect(what, "mcause", last_cause, cause);
    rt_expect(what, "vector", last_vector, vector);
    hook_calls = 0;
    vector_taken = 0xffffffff;
}

/* Enables interrupt `code` (already pending) in mie and opens mstatus.MIE for a moment. */
static void take_interrupt(uint32_t code) {
    csr_set(mie, 1u << code);
    csr_set(mstatus, MSTATUS_MIE);
    __asm__ volatile("nop");
    csr_clear(mstatus, MSTATUS_MIE);
}

static void test_vectored_mtvec(void) {
    csr_write(mie, 0);
    set_mtimecmp(~0ull);
    rt_set_trap_hook(vectored_hook);
    csr_write(mtvec, address_of(vector_table) | 1);
    CHECK_EQ(csr_read(mtvec), address_of(vector_table) | 1);
    hook_calls = 0;
    vector_taken = 0xffffffff;

    do_ecall(0);
    expect_vector("ecall, vectored", CAUSE_ECALL_M, 0);

    csr_set(mip, MIP_SSIP);
    take_interrupt(1);
    expect_vector("SSI, vectored", CAUSE_INTERRUPT | 1, 1);
    csr_clear(mip, MIP_SSIP);

    MMIO32(CLINT_BASE) = 1; /* msip */
    take_interrupt(3);
    expect_vector("MSI, vectored", CAUSE_INTERRUPT | 3, 3);
    MMIO32(CLINT_BASE) = 0;

    csr_set(mip, MIP_STIP);
    take_interrupt(5);
    expect_vector("STI, vectored", CAUSE_INTERRUPT | 5, 5);
    csr_clear(mip, MIP_STIP);

    set_mtimecmp(0); /* mtime >= 0: MTIP */
    take_interrupt(7);
    expect_vector("MTI, vectored", CAUSE_INTERRUPT | 7, 7);
    set_mtimecmp(~0ull);

    csr_set(mip, MIP_SEIP);
    take_interrupt(9);
    expect_vector("SEI, vectored", CAUSE_INTERRUPT | 9, 9);
    csr_clear(mip, MIP_SEIP);

    /* Back to direct mode: everything at the base. */
    csr_write(mtvec, address_of(vector_table));
    MMIO32(CLINT_BASE) = 1;
    take_interrupt(3);
    expect_vector("MSI, direct", CAUSE_INTERRUPT | 3, 0);
    MMIO32(CLINT_BASE) = 0;

    csr_write(mtvec, (uint32_t)(uintptr_t)rt_trap_entry);
    CHECK_EQ(csr_read(mip) & (MIP_SSIP | MIP_MSIP | MIP_STIP | MIP_MTIP | MIP_SEIP), 0);
    rt_note_mtraps();
}

/* mret to the same place in M-mode with mstatus = a0; returns mstatus after the mret (and
 * clears MPRV, which could otherwise make the caller's loads use MPP = U). */
__asm__(
    ".text\n"
    "mret_here:\n"
    "    csrw mstatus, a0\n"
    "    la t0, 1f\n"
    "    csrw mepc, t0\n"
    "    mret\n"
    "1:  csrr a0, mstatus\n"
    "    li t0, 0x20000\n"
    "    csrc mstatus, t0\n"
    "    ret\n"
    /* The same with sret in S-mode and sstatus. */
    "sret_here:\n"
    "    csrw sstatus, a0\n"
    "    la t0, 1f\n"
    "    csrw sepc, t0\n"
    "    sret\n"
    "1:  csrr a0, sstatus\n"
    "    ret\n"
    /* From S-mode, sret with SPP = 0 to U-mode code that ecalls (M notes cause 8), then
     * returns to rt_run_in_mode's caller. */
    "sret_to_user:\n"
    "    la t0, 1f\n"
    "    csrw sepc, t0\n"
    "    li t0, 0x100\n"
    "    csrc sstatus, t0\n"
    "    sret\n"
    "1:  li a7, 0\n"
    "    ecall\n"
    "    li a7, 0x52540001\n" /* RT_ECALL_RETURN */
    "    ecall\n");
extern uint32_t mret_here(uint32_t status), sret_here(uint32_t status), sret_to_user(uint32_t unused);

static void test_xret(void) {
    const uint32_t fields = MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP;
    csr_write(mie, 0);
    /* mret: MIE = MPIE, MPIE = 1, MPP = U (the least privileged mode). */
    CHECK_EQ(mret_here(MSTATUS_MPP | MSTATUS_MPIE) & fields, MSTATUS_MIE | MSTATUS_MPIE);
    csr_clear(mstatus, MSTATUS_MIE);
    CHECK_EQ(mret_here(MSTATUS_MPP | MSTATUS_MIE) & fields, MSTATUS_MPIE);
    /* mret with MPP = M keeps MPRV. (Priv spec 1.12 has an mret or sret to a mode below M
     * clear MPRV; QEMU 7.2 does not, so that is not asserted.) */
    CHECK_EQ(mret_here(MSTATUS_MPP | MSTATUS_MPRV) & MSTATUS_MPRV, MSTATUS_MPRV);

    /* sret: SIE = SPIE, SPIE = 1, SPP = U. */
    const uint32_t sfields = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP;
    CHECK_EQ(rt_run_in_mode(MODE_S, (uint32_t)(uintptr_t)sret_here, MSTATUS_SPP | MSTATUS_SPIE, 0) & sfields,
             MSTATUS_SIE | MSTATUS_SPIE);
    CHECK_EQ(rt_run_in_mode(MODE_S, (uint32_t)(uintptr_t)sret_here, MSTATUS_SPP | MSTATUS_SIE, 0) & sfields,
             MSTATUS_SPIE);
    csr_clear(mstatus, MSTATUS_SIE | MSTATUS_SPIE);
    /* sret with SPP = 0 enters U-mode. */
    rt_clear_notes();
    RUN_IN_S(sret_to_user, 0);
    CHECK_EQ(rt_mnote.count, 1);
    CHECK_EQ(rt_mnote.cause, CAUSE_ECALL_U);
    CHECK_EQ(rt_mnote.from_mode, MODE_U);
    /* xRET from a less privileged mode is illegal; so is sret in S with TSR = 1, wfi in S
     * with TW = 1, wfi in U (S-mode exists), and satp or sfence.vma in S with TVM = 1. */
    expect_illegal("mret", MODE_S, do_mret, do_mret_at);
    expect_illegal("mret", MODE_U, do_mret, do_mret_at);
    expect_illegal("sret", MODE_U, do_sret, do_sret_at);
    csr_set(mstatus, MSTATUS_TSR);
    expect_illegal("sret with TSR", MODE_S, do_sret, do_sret_at);
    csr_clear(mstatus, MSTATUS_TSR);
    csr_set(mstatus, MSTATUS_TW);
    expect_illegal("wfi with TW", MODE_S, do_wfi, do_wfi_at);
    csr_clear(mstatus, MSTATUS_TW);
    expect_illegal("wfi", MODE_U, do_wfi, do_wfi_at);
    csr_set(mstatus, MSTATUS_TVM);
    expect_illegal("sfence.vma with TVM", MODE_S, do_sfence, do_sfence_at);
    expect_illegal("csrr satp with TVM", MODE_S, read_satp, read_satp_at);
    csr_clear(mstatus, MSTATUS_TVM);
    expect_no_trap("sfence.vma", MODE_S, do_sfence, 0);
    expect_no_trap("csrr satp", MODE_S, read_satp, 0);
}

static void test_csr_privilege(void) {
    expect_illegal("csrr mstatus", MODE_U, read_mstatus, read_mstatus_at);
    expect_illegal("csrr sstatus", MODE_U, read_sstatus, read_sstatus_at);
    expect_illegal("csrr satp", MODE_U, read_satp, read_satp_at);
    expect_illegal("csrr mscratch", MODE_U, read_mscratch, read_mscratch_at);
    expect_illegal("csrr sscratch", MODE_U, read_sscratch, read_sscratch_at);
    expect_illegal("csrr mstatus", MODE_S, read_mstatus, read_mstatus_at);
    expect_illegal("csrr mscratch", MODE_S, read_mscratch, read_mscratch_at);
    expect_illegal("csrr medeleg", MODE_S, read_medeleg, read_medeleg_at);
    expect_illegal("csrr mepc", MODE_S, read_mepc, read_mepc_at);
    expect_illegal("csrw mtvec", MODE_S, write_mtvec, write_mtvec_at);
    expect_illegal("csrw stvec", MODE_U, write_stvec, write_stvec_at);
    expect_no_trap("csrr sstatus", MODE_S, read_sstatus, 0);
    expect_no_trap("csrr sscratch", MODE_S, read_sscratch, 0);
    expect_no_trap("csrw stvec", MODE_S, write_stvec, (uint32_t)(uintptr_t)rt_strap_entry);
    /* sstatus is a view of mstatus. */
    csr_set(mstatus, MSTATUS_SUM);
    CHECK_EQ(run(MODE_S, read_sstatus, 0) & MSTATUS_SUM, MSTATUS_SUM);
    csr_clear(mstatus, MSTATUS_SUM);
    CHECK_EQ(run(MODE_S, read_sstatus, 0) & MSTATUS_SUM, 0);
}

/* cycle, time and instret (and their RV32 high halves) from S need the mcounteren bit;
 * from U both the mcounteren and the scounteren bit. M-mode may always read them. */
static void test_counter_enables(void) {
    static const struct {
        const char *name;
        uint32_t bit;
        uint32_t (*fn)(uint32_t);
        const uint32_t *at;
    } counters[] = {
        {"cycle", 0, read_cycle, read_cycle_at},     {"time", 1, read_time, read_time_at},
        {"instret", 2, read_instret, read_instret_at}, {"cycleh", 0, read_cycleh, read_cycleh_at},
        {"timeh", 1, read_timeh, read_timeh_at},     {"instreth", 2, read_instreth, read_instreth_at},
    };
    static const uint32_t settings[][2] = {{0, 0}, {7, 0}, {0, 7}, {7, 7}, {5, 2}, {2, 3}, {1, 1}};
    for (unsigned s = 0; s < sizeof settings / sizeof settings[0]; s++) {
        uint32_t m = settings[s][0], sup = settings[s][1];
        csr_write(mcounteren, m);
        csr_write(scounteren, sup);
        for (unsigned c = 0; c < sizeof counters / sizeof counters[0]; c++) {
            uint32_t bit = 1u << counters[c].bit;
            char name[64];
            rt_snprintf(name, sizeof name, "%s, mcounteren=%u scounteren=%u", counters[c].name, m, sup);
            if (m & bit) expect_no_trap(name, MODE_S, counters[c].fn, 0);
            else expect_illegal(name, MODE_S, counters[c].fn, counters[c].at);
            if ((m & bit) && (sup & bit)) expect_no_trap(name, MODE_U, counters[c].fn, 0);
            else expect_illegal(name, MODE_U, counters[c].fn, counters[c].at);
            expect_no_trap(name, MODE_M, counters[c].fn, 0);
        }
    }
    csr_write(mcounteren, 0);
    csr_write(scounteren, 0);
}

int main(void) {
    pmp_allow_all();
    rt_note_mtraps();
    rt_note_straps();
    test_illegal_instructions();
    test_ecall_ebreak();
    test_access_faults();
    test_delegation();
    test_vectored_mtvec();
    test_xret();
    test_csr_privilege();
    test_counter_enables();
    return rt_check_done("traps");
}
