/* Exact instruction counting: minstret (and mcycle) deltas over code of known length, and
 * over traps. The deltas are printed line by line so that a differential run can compare
 * QEMU's output with understudy's; only deltas are printed, never absolute counter values
 * (QEMU's start value is arbitrary).
 *
 * What is asserted is what the spec and QEMU agree on: each retired instruction counts
 * once, so two back-to-back reads differ by 1 and a block of N instructions between two
 * reads gives N + 1. The trap cases are printed only. The spec says an instruction that
 * raises an exception, ECALL and EBREAK included, does not retire; QEMU 7.2 with -icount
 * counts ECALL, EBREAK and illegal instructions found at decode time, but not
 * instructions that fault on a memory access or on a check made while executing (CSR
 * privilege, read-only CSRs, TSR, ...).
 *
 * Left out on purpose, because QEMU's numbers there are artifacts of its -icount
 * accounting: a WFI that does not sleep (QEMU also counts every instruction after the WFI
 * in the same translation block: "wfi" between the reads gives 3, "wfi; nop" 5), and
 * anything across a WFI that sleeps (minstret is QEMU's virtual clock in ns, so it grows
 * by the time slept, which with the default sleep=on follows the host's clock). */
#include "runtime.h"

/* A trap handler of known length for the measurements: skips the trapping instruction.
 * It clobbers t0 (the measured code declares that) and sends the runtime's return ecall
 * on to rt_trap_entry. 7 instructions: li (2), bne, csrr, addi, csrw, mret. */
#define HANDLER_INSTRUCTIONS 7u
__asm__(
    ".text\n"
    ".balign 4\n"
    "count_trap_entry:\n"
    "    li t0, 0x52540001\n" /* RT_ECALL_RETURN */
    "    bne a7, t0, 1f\n"
    "    j rt_trap_entry\n"
    "1:  csrr t0, mepc\n"
    "    addi t0, t0, 4\n"
    "    csrw mepc, t0\n"
    "    mret\n");
extern const uint32_t count_trap_entry[];

/* Measured bodies: a0 = argument, returns instret(after) - instret(before), where the
 * reads bracket `insn` (assembled without C: the handler skips 4 bytes). instret (the user-level alias) so that S and U can run them too. */
#define MEASURE(name, insn)                                \
    __asm__(".text\n.balign 4\n" #name ":\n"               \
            "    li a7, 0\n"                               \
            "    csrr t1, instret\n"                       \
            ".option push\n.option norvc\n" insn "\n"   \
            ".option pop\n"                              \
            "    csrr t2, instret\n"                       \
            "    sub a0, t2, t1\n"                         \
            "    ret\n");                                  \
    extern uint32_t name(uint32_t)

MEASURE(measure_nothing, "");
MEASURE(measure_straight, ".rept 5\n addi t3, t3, 1\n xor t4, t4, t3\n sw t3, -4(sp)\n lw t4, -4(sp)\n .endr");
MEASURE(measure_loop, "li t3, 100\n 1: addi t3, t3, -1\n bnez t3, 1b");
MEASURE(measure_ecall, "ecall");
MEASURE(measure_ebreak, "ebreak");
MEASURE(measure_illegal, ".word 0xffffffff");
MEASURE(measure_load_fault, "lw t3, 0(a0)");
MEASURE(measure_store_fault, "sw t3, 0(a0)");
MEASURE(measure_misaligned_load, "lw t3, 1(sp)");
MEASURE(measure_csr_readonly, "csrw mvendorid, zero");
MEASURE(measure_csr_missing, "csrr t3, 0x7ff");
MEASURE(measure_csr_privileged, "csrr t3, mstatus");
MEASURE(measure_sret, "sret");
MEASURE(measure_mret, "mret");
MEASURE(measure_wfi, "wfi");

/* The same bracket with mcycle, M-mode only. */
__asm__(
    ".text\n.balign 4\n"
    "measure_cycles_straight:\n"
    "    csrr t1, mcycle\n"
    "    .rept 20\n nop\n .endr\n"
    "    csrr t2, mcycle\n"
    "    sub a0, t2, t1\n"
    "    ret\n"
    /* minstret written, then read: returns read - written. */
    "measure_after_write:\n"
    "    li t1, 1000\n"
    "    csrw minstret, t1\n"
    "    csrr t2, minstret\n"
    "    sub a0, t2, t1\n"
    "    ret\n");
extern uint32_t measure_cycles_straight(uint32_t), measure_after_write(uint32_t);

static const char *const mode_names[] = {"U", "S", "?", "M"}; /* by privilege level */
static const uint32_t all_modes[] = {MODE_U, MODE_S, MODE_M};

static uint32_t run(uint32_t mode, uint32_t (*fn)(uint32_t), uint32_t arg) {
    if (mode == MODE_M) return fn(arg);
    return rt_run_in_mode(mode, (uint32_t)(uintptr_t)fn, arg, 0);
}

static void report(const char *what, uint32_t mode, uint32_t (*fn)(uint32_t), uint32_t arg) {
    rt_printf("minstret delta %s (%s): %u\n", what, mode_names[mode], run(mode, fn, arg));
}

int main(void) {
    pmp_allow_all();
    csr_write(mcounteren, 7);
    csr_write(scounteren, 7);
    csr_write(mtvec, (uint32_t)(uintptr_t)count_trap_entry);

    uint32_t back_to_back = measure_nothing(0);
    uint32_t straight = measure_straight(0);
    uint32_t loop = measure_loop(0);
    rt_printf("minstret delta back-to-back: %u\n", back_to_back);
    rt_printf("minstret delta straight-line (20 instructions): %u\n", straight);
    rt_printf("minstret delta loop (100 iterations): %u\n", loop);
    CHECK_EQ(back_to_back, 1);
    CHECK_EQ(straight, 21);
    CHECK_EQ(loop, 202);
    uint32_t cycles = measure_cycles_straight(0);
    rt_printf("mcycle delta straight-line (20 instructions): %u\n", cycles);
    rt_printf("minstret read after write, minus the value written: %u\n", measure_after_write(0));

    rt_printf("trap handler: %u instructions\n", HANDLER_INSTRUCTIONS);
    for (unsigned m = 0; m < 3; m++) {
        uint32_t mode = all_modes[m];
        CHECK_EQ(run(mode, measure_nothing, 0), 1);
        CHECK_EQ(run(mode, measure_straight, 0), 21);
        report("ecall round trip", mode, measure_ecall, 0);
        report("ebreak round trip", mode, measure_ebreak, 0);
        report("illegal instruction round trip", mode, measure_illegal, 0);
        report("load access fault round trip", mode, measure_load_fault, 0x05000000);
        report("store access fault round trip", mode, measure_store_fault, 0x05000000);
        report("misaligned load (completed)", mode, measure_misaligned_load, 0);
        report("missing CSR round trip", mode, measure_csr_missing, 0);
        if (mode == MODE_M) report("write to read-only CSR round trip", mode, measure_csr_readonly, 0);
        if (mode != MODE_M) report("M-mode CSR access round trip", mode, measure_csr_privileged, 0);
        if (mode == MODE_U) report("sret round trip", mode, measure_sret, 0);
        if (mode != MODE_M) report("mret round trip", mode, measure_mret, 0);
        if (mode == MODE_U) report("wfi round trip", mode, measure_wfi, 0);
    }
    /* sret in S-mode with TSR = 1: the check is made while executing. */
    csr_set(mstatus, MSTATUS_TSR);
    report("sret with TSR round trip", MODE_S, measure_sret, 0);
    csr_clear(mstatus, MSTATUS_TSR);

    csr_write(mtvec, (uint32_t)(uintptr_t)rt_trap_entry);
    return rt_check_done("counters");
}
