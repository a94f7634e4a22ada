/* Interrupts (privileged spec, "Machine Interrupt Registers" and "Supervisor Interrupt
 * Registers"): the CLINT timer and software interrupts, the PLIC's external interrupt,
 * STIP/SSIP delegated to S-mode, priority among pending interrupts (where QEMU 7.2 agrees
 * with the spec: see test_priority), M-level before S-level, global enables (MIE only
 * masks M-mode itself; lower modes always take M-level interrupts), and WFI waking up on
 * mip & mie with interrupts globally off.
 *
 * The external interrupt comes from the UART's "transmitter empty" interrupt routed
 * through the PLIC to context 0 (hart 0, M-mode), as on QEMU's virt board. */
#include "runtime.h"

#define TAKEN_MAX 16
#define TAKEN_IN_S 0x100u /* marks an interrupt taken in S-mode in the `taken` log */

/* The log of interrupts taken, in order: the cause code, | TAKEN_IN_S for S-mode. */
static volatile uint32_t taken[TAKEN_MAX];
static volatile uint32_t taken_count, last_epc, last_from_mode, last_mip;

static void log_taken(uint32_t entry) {
    if (taken_count < TAKEN_MAX) taken[taken_count] = entry;
    taken_count++;
}

static void clear_log(void) {
    taken_count = 0;
    for (int i = 0; i < TAKEN_MAX; i++) taken[i] = 0xffffffff;
}

/* M-mode: an interrupt is logged and silenced by clearing its bit in mie, so that the
 * next pending one (if any) is taken next. Exceptions are unexpected. */
static void machine_hook(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    (void)frame;
    if (!(cause & CAUSE_INTERRUPT)) {
        rt_printf("unexpected exception: mcause=0x%x mepc=0x%x mtval=0x%x\n", cause, epc, tval);
        rt_exit(95);
    }
    last_mip = csr_read(mip);
    last_epc = epc;
    last_from_mode = (csr_read(mstatus) & MSTATUS_MPP) >> 11;
    log_taken(cause & 31);
    csr_clear(mie, 1u << (cause & 31));
}

/* S-mode: the same with sie (which is mie's view of the delegated bits). */
static void supervisor_hook(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    (void)frame;
    if (!(cause & CAUSE_INTERRUPT)) {
        rt_printf("unexpected S exception: scause=0x%x sepc=0x%x stval=0x%x\n", cause, epc, tval);
        rt_exit(95);
    }
    last_mip = csr_read(sip);
    last_epc = epc;
    last_from_mode = (csr_read(sstatus) & MSTATUS_SPP) ? MODE_S : MODE_U;
    log_taken(TAKEN_IN_S | (cause & 31));
    csr_clear(sie, 1u << (cause & 31));
}

static void expect_log(const char *what, const uint32_t *expected, uint32_t count) {
    rt_expect(what, "interrupts taken", taken_count, count);
    for (uint32_t i = 0; i < count && i < TAKEN_MAX; i++) {
        char field[16];
        rt_snprintf(field, sizeof field, "taken[%u]", i);
        rt_expect(what, field, taken[i], expected[i]);
    }
    clear_log();
}

/* Silences every source used here. */
static void quiesce(void) {
    csr_clear(mstatus, MSTATUS_MIE | MSTATUS_SIE);
    csr_write(mie, 0);
    csr_write(mideleg, 0);
    set_mtimecmp(~0ull);
    MMIO32(CLINT_MSIP) = 0;
    csr_clear(mip, MIP_SSIP | MIP_STIP | MIP_SEIP);
    MMIO8(UART_IER) = 0;
    MMIO32(PLIC_ENABLE(0)) = 0;
    uint32_t claimed = MMIO32(PLIC_CLAIM(0));
    if (claimed) MMIO32(PLIC_CLAIM(0)) = claimed;
}

/* An asm fragment: open MIE, wait, close MIE. Returns the address after the wfi in *after. */
static void wait_with_mie(uint32_t *after) {
    __asm__ volatile(
        "la %0, 1f\n"
        "csrsi mstatus, 8\n"
        "wfi\n"
        "1: csrci mstatus, 8\n"
        : "=&r"(*after)::"memory");
}

static void test_timer(void) {
    clear_log();
    /* MTIP follows mtime >= mtimecmp, and software cannot write it. */
    set_mtimecmp(0);
    CHECK_EQ(csr_read(mip) & MIP_MTIP, MIP_MTIP);
    set_mtimecmp(~0ull);
    CHECK_EQ(csr_read(mip) & MIP_MTIP, 0);
    csr_set(mip, MIP_MTIP);
    CHECK_EQ(csr_read(mip) & MIP_MTIP, 0);

    uint64_t deadline = read_mtime() + 1000;
    set_mtimecmp(deadline);
    csr_write(mie, MIP_MTIP);
    uint32_t after;
    wait_with_mie(&after);
    uint32_t expected[] = {7};
    expect_log("timer interrupt", expected, 1);
    CHECK_EQ(csr_read(mcause), CAUSE_INTERRUPT | 7);
    CHECK_EQ(last_epc, after); /* taken after the wfi completes */
    CHECK_EQ(last_mip & MIP_MTIP, MIP_MTIP);
    CHECK(read_mtime() >= deadline);
    quiesce();
}

static void test_software(void) {
    clear_log();
    MMIO32(CLINT_MSIP) = 1;
    CHECK_EQ(MMIO32(CLINT_MSIP), 1);
    CHECK_EQ(csr_read(mip) & MIP_MSIP, MIP_MSIP);
    /* Pending and enabled in mie, but MIE = 0: not taken. */
    csr_write(mie, MIP_MSIP);
    for (volatile int i = 0; i < 10; i++) {
    }
    CHECK_EQ(taken_count, 0);
    uint32_t after;
    __asm__ volatile("la %0, 1f\n csrsi mstatus, 8\n 1: csrci mstatus, 8" : "=&r"(after)::"memory");
    uint32_t expected[] = {3};
    expect_log("software interrupt", expected, 1);
    CHECK_EQ(csr_read(mcause), CAUSE_INTERRUPT | 3);
    CHECK_EQ(last_epc, after); /* right after the csrsi that enabled it */
    MMIO32(CLINT_MSIP) = 0;
    CHECK_EQ(csr_read(mip) & MIP_MSIP, 0);
    quiesce();
}

/* Brings MEIP up: UART THR-empty interrupt (source 10), enabled for context 0. */
static void raise_external(void) {
    MMIO32(PLIC_PRIORITY(UART_IRQ)) = 1;
    MMIO32(PLIC_THRESHOLD(0)) = 0;
    MMIO32(PLIC_ENABLE(0)) = 1u << UART_IRQ;
    MMIO8(UART_IER) = UART_IER_THRI;
}

static void test_external(void) {
    clear_log();
    raise_external();
    CHECK_EQ(csr_read(mip) & MIP_MEIP, MIP_MEIP);
    csr_write(mie, MIP_MEIP);
    uint32_t after;
    __asm__ volatile("la %0, 1f\n csrsi mstatus, 8\n 1: csrci mstatus, 8" : "=&r"(after)::"memory");
    uint32_t expected[] = {11};
    expect_log("external interrupt", expected, 1);
    CHECK_EQ(last_epc, after);
    CHECK_EQ(MMIO32(PLIC_CLAIM(0)), UART_IRQ);
    MMIO8(UART_IER) = 0;
    MMIO32(PLIC_CLAIM(0)) = UART_IRQ;
    CHECK_EQ(csr_read(mip) & MIP_MEIP, 0);
    quiesce();
}

/* Makes interrupt `code` pending at its source. */
static void raise_interrupt(uint32_t code) {
    switch (code) {
    case 1: csr_set(mip, MIP_SSIP); break;
    case 3: MMIO32(CLINT_MSIP) = 1; break;
    case 5: csr_set(mip, MIP_STIP); break;
    case 7: set_mtimecmp(0); break;
    case 9: csr_set(mip, MIP_SEIP); break;
    case 11: raise_external(); break;
    }
}

/* Priority among interrupts pending together, none delegated. The spec's order is
 * MEI > MSI > MTI > SEI > SSI > STI. QEMU 7.2 (without AIA) takes the lowest-numbered one
 * instead (SSI > MSI > STI > MTI > SEI > MEI), so only the pairs on which both orders
 * agree are asserted: MSI > MTI, MSI > SEI, MSI > STI, MTI > SEI, SSI > STI. With all six
 * pending, each must be taken exactly once. */
static void test_priority(void) {
    static const uint32_t pairs[][2] = {{3, 7}, {3, 9}, {3, 5}, {7, 9}, {1, 5}};
    for (unsigned i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        uint32_t first = pairs[i][0], second = pairs[i][1];
        char what[48];
        rt_snprintf(what, sizeof what, "priority of %u over %u", first, second);
        clear_log();
        /* Raise the lower-priority one first, in case raising order mattered. */
        raise_interrupt(second);
        raise_interrupt(first);
        csr_write(mie, (1u << first) | (1u << second));
        __asm__ volatile("csrsi mstatus, 8\n nop\n csrci mstatus, 8" ::: "memory");
        uint32_t expected[] = {first, second};
        expect_log(what, expected, 2);
        quiesce();
    }

    clear_log();
    const uint32_t all = MIP_MEIP | MIP_MSIP | MIP_MTIP | MIP_SEIP | MIP_SSIP | MIP_STIP;
    for (uint32_t code = 1; code <= 11; code += 2) raise_interrupt(code);
    CHECK_EQ(csr_read(mip) & all, all);
    csr_write(mie, all);
    __asm__ volatile("csrsi mstatus, 8\n nop\n csrci mstatus, 8" ::: "memory");
    CHECK_EQ(taken_count, 6);
    uint32_t seen = 0;
    for (uint32_t i = 0; i < taken_count && i < TAKEN_MAX; i++) seen |= 1u << taken[i];
    CHECK_EQ(seen, all);
    clear_log();
    quiesce();
}

static uint32_t spin(uint32_t n) {
    for (volatile uint32_t i = 0; i < n; i++) {
    }
    return n;
}

/* With SSIP and STIP delegated and MSIP not, S-mode takes MSI in M first, then its own in
 * the order SSI, STI. */
static void test_priority_delegated(void) {
    clear_log();
    csr_write(mideleg, MIP_SSIP | MIP_STIP);
    MMIO32(CLINT_MSIP) = 1;
    csr_set(mip, MIP_SSIP | MIP_STIP);
    csr_write(mie, MIP_MSIP | MIP_SSIP | MIP_STIP);
    /* In M-mode with MIE = 1, the delegated ones are never taken; MSI is. */
    __asm__ volatile("csrsi mstatus, 8\n nop\n csrci mstatus, 8" ::: "memory");
    uint32_t only_msi[] = {3};
    expect_log("M-mode ignores delegated interrupts", only_msi, 1);
    csr_set(mie, MIP_MSIP);
    csr_clear(mstatus, MSTATUS_MPIE); /* S starts with MIE = 0: M interrupts come anyway */
    csr_set(mstatus, MSTATUS_SIE);
    RUN_IN_S(spin, 10);
    uint32_t expected[] = {3, TAKEN_IN_S | 1, TAKEN_IN_S | 5};
    expect_log("priority, S-mode", expected, 3);
    quiesce();
}

/* Delegated STIP, raised by M-mode writing mip.STIP, taken by S-mode. */
static uint32_t read_sip(uint32_t unused) {
    (void)unused;
    return csr_read(sip);
}

static uint32_t write_sip(uint32_t value) {
    csr_write(sip, value);
    return csr_read(sip);
}

static void test_delegated_timer(void) {
    clear_log();
    csr_write(mideleg, MIP_STIP | MIP_SSIP);
    csr_set(mip, MIP_STIP);
    CHECK_EQ(RUN_IN_S(read_sip, 0) & MIP_STIP, MIP_STIP);
    /* sip.STIP is read-only for S. */
    CHECK_EQ(RUN_IN_S(write_sip, 0) & MIP_STIP, MIP_STIP);
    csr_write(mie, MIP_STIP);
    /* S-mode with SIE = 0: masked. */
    csr_clear(mstatus, MSTATUS_SIE);
    RUN_IN_S(spin, 10);
    CHECK_EQ(taken_count, 0);
    /* S-mode with SIE = 1: taken in S with scause 0x80000005, M untouched. */
    csr_set(mstatus, MSTATUS_SIE);
    RUN_IN_S(spin, 10);
    uint32_t in_s[] = {TAKEN_IN_S | 5};
    expect_log("delegated STI in S", in_s, 1);
    CHECK_EQ(last_from_mode, MODE_S);
    CHECK_EQ(last_mip & MIP_STIP, MIP_STIP);
    /* U-mode takes it whatever SIE says. */
    csr_clear(mstatus, MSTATUS_SIE);
    csr_write(mie, MIP_STIP);
    RUN_IN_U(spin, 10);
    expect_log("delegated STI in U", in_s, 1);
    CHECK_EQ(last_from_mode, MODE_U);
    csr_clear(mip, MIP_STIP);
    CHECK_EQ(RUN_IN_S(read_sip, 0) & MIP_STIP, 0);

    /* SSIP is writable through sip once delegated: S raises its own software interrupt. */
    csr_write(mie, MIP_SSIP);
    csr_set(mstatus, MSTATUS_SIE);
    CHECK_EQ(RUN_IN_S(write_sip, MIP_SSIP) & MIP_SSIP, MIP_SSIP);
    uint32_t ssi[] = {TAKEN_IN_S | 1};
    expect_log("S raises SSIP", ssi, 1);
    CHECK_EQ(csr_read(mip) & MIP_SSIP, MIP_SSIP); /* the hook only disabled it */
    CHECK_EQ(RUN_IN_S(write_sip, 0) & MIP_SSIP, 0);
    quiesce();
}

/* MIE = 0 masks interrupts in M-mode only: S and U take M-level interrupts regardless. */
static void test_lower_modes_ignore_mie(void) {
    clear_log();
    MMIO32(CLINT_MSIP) = 1;
    csr_write(mie, MIP_MSIP);
    csr_clear(mstatus, MSTATUS_MIE | MSTATUS_MPIE); /* the lower mode runs with MIE = 0 */
    spin(10);
    CHECK_EQ(taken_count, 0);
    RUN_IN_S(spin, 10);
    uint32_t msi[] = {3};
    expect_log("MSI in S with MIE = 0", msi, 1);
    CHECK_EQ(last_from_mode, MODE_S);
    csr_write(mie, MIP_MSIP);
    csr_clear(mstatus, MSTATUS_MPIE);
    RUN_IN_U(spin, 10);
    expect_log("MSI in U with MIE = 0", msi, 1);
    CHECK_EQ(last_from_mode, MODE_U);
    quiesce();
}

/* WFI returns when mip & mie != 0 even with MIE = 0; no trap is taken. */
static void test_wfi_without_trap(void) {
    clear_log();
    uint64_t deadline = read_mtime() + 1000;
    set_mtimecmp(deadline);
    csr_write(mie, MIP_MTIP);
    csr_clear(mstatus, MSTATUS_MIE);
    __asm__ volatile("wfi" ::: "memory");
    CHECK_EQ(taken_count, 0);
    CHECK_EQ(csr_read(mip) & MIP_MTIP, MIP_MTIP);
    CHECK(read_mtime() >= deadline);
    /* Already pending: WFI falls through at once. */
    __asm__ volatile("wfi" ::: "memory");
    CHECK_EQ(taken_count, 0);
    quiesce();
}

int main(void) {
    pmp_allow_all();
    quiesce();
    rt_set_trap_hook(machine_hook);
    rt_set_strap_hook(supervisor_hook);
    csr_write(stvec, (uint32_t)(uintptr_t)rt_strap_entry);
    test_timer();
    test_software();
    test_external();
    test_priority();
    test_priority_delegated();
    test_delegated_timer();
    test_lower_modes_ignore_mie();
    test_wfi_without_trap();
    return rt_check_done("interrupts");
}
