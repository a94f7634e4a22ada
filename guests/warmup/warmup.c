/* The warm-up guest: a short run (about 4,400 instructions) that takes every path through
 * the host's interpreter that Linux and the test guests take, in a scratch machine before a
 * process runs its real guest (src/host/warm-up.ts). V8 compiles the interpreter's run loop
 * from what it has seen it do; a path the loop had never taken deoptimizes the compiled code
 * ("insufficient type feedback"), and each recompile of that one large function costs 40-300
 * ms (docs/BENCHMARKS.md). Once is enough for each path, and more is harmful: V8 compiles the
 * loop once it has run a few thousand instructions with nothing new, and a compile during the
 * warm-up would miss what comes after it. So one fault of each kind (a trap runs some 70
 * instructions of the runtime's), few operand pairs, no loops. Nothing here checks results:
 * the test guests do that. It ends through the test device with status 0; the host ignores
 * its output.
 *
 * In order: integer and compressed instructions on edge values; loads and stores of each
 * width on a page first seen, on a page seen before, on MMIO, misaligned, and into a page
 * with decoded code; atomics; the F and D instructions (after one with the FPU off); CSRs and
 * counters; M-mode exceptions; self-modifying code, including an instruction that straddles
 * two pages; M-mode timer, software and external interrupts (the timer taken in WFI); then
 * Sv32 with megapages and 4 KiB pages (A and D set by the walk), S-mode code with delegated
 * exceptions and interrupts (a timer passed down by M-mode, as an SBI does), and U-mode code.
 * The instruction lists are in instructions.S. */
#include "runtime.h"
#include "sv32.h"

#define MSTATUS_FS (3u << 13)
#define MSTATUS_FS_INITIAL (1u << 13)
#define UART_SCRATCH (UART_BASE + 7u)
#define PAGE_BYTES 4096u

/* Sv32 layout: the program's RAM and the devices identity-mapped with megapages (S only);
 * the program again at U_ALIAS for U-mode; 4 KiB test pages at 0x4400_0000. */
#define RAM_MEGAPAGES 4u
#define U_ALIAS 0x40000000u
#define U_OFFSET (U_ALIAS - 0x80000000u)
#define VA_DATA 0x44000000u     /* data_page, RW, A = D = 0 */
#define VA_READONLY 0x44001000u /* data_page, R */
#define VA_NOEXEC 0x44002000u   /* data_page, RW */
#define VA_USER 0x44003000u     /* user_page, U RW, A = D = 0 */
#define VA_UNMAPPED 0x44004000u /* instructions.S's warm_user uses it */
#define VA_CODE 0x44005000u     /* code_page, RWX: S-mode writes code there and runs it */

void warm_integer(uint32_t a, uint32_t b);
void warm_loads(uint32_t address);
void warm_stores(uint32_t address, uint32_t value);
void warm_atomics(uint32_t address);
void warm_float_memory(uint32_t address);
void warm_float_ops(const uint32_t *operands, uint32_t integer);
void warm_float_one(void);
uint32_t warm_load_word(uint32_t address);
void warm_store_word(uint32_t address);
void warm_traps(uint32_t misaligned);
void warm_user(uint32_t page);

static uint32_t data_page[1024] __attribute__((aligned(4096)));
static uint32_t user_page[1024] __attribute__((aligned(4096)));
static uint32_t code_page[2048] __attribute__((aligned(4096))); /* two pages: one instruction straddles them */
static uint32_t s_stack[256] __attribute__((aligned(16)));

static const uint32_t edge_values[] = {0, 1, 7, 0xffffffffu, 0x7fffffffu, 0x80000000u, 0x12345678u};

/* Doubles (low word first) and singles: normal, negative, zero, infinity, NaN, subnormal. */
static const uint32_t float_operands[][6] = {
    {0x00000000u, 0x3ff80000u, 0x00000000u, 0x40090000u, 0x3fc00000u, 0x40400000u}, /* 1.5, 3.125 */
    {0x00000000u, 0xc0240000u, 0x00000000u, 0x00000000u, 0xc1200000u, 0x00000000u}, /* -10, 0 */
    {0x00000000u, 0x7ff00000u, 0x00000000u, 0x7ff80000u, 0x7f800000u, 0x7fc00000u}, /* inf, NaN */
    {0x00000001u, 0x00000000u, 0xffffffffu, 0x41dfffffu, 0x00000001u, 0x4f000000u}, /* subnormal, 2^31 - 1 */
};

static volatile uint32_t s_timer_taken;

/* M-mode: exceptions resume after the instruction (a fetch fault at ra, see warm_traps);
 * interrupts are silenced at their source; the timer is passed on to S as STIP, the way an
 * SBI firmware passes on the timer it set for the kernel. */
static void machine_hook(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    (void)tval;
    if (!(cause & CAUSE_INTERRUPT)) {
        csr_write(mepc, cause == CAUSE_FETCH_ACCESS || cause == CAUSE_FETCH_PAGE ? frame->ra : epc + 4);
        return;
    }
    switch (cause & 31) {
    case 7: /* MTI */
        set_mtimecmp(~0ull);
        if (csr_read(mideleg) & MIP_STIP) csr_set(mip, MIP_STIP);
        break;
    case 3: /* MSI */
        MMIO32(CLINT_MSIP) = 0;
        break;
    default: { /* MEI: the UART through the PLIC */
        uint32_t id = MMIO32(PLIC_CLAIM(0));
        MMIO8(UART_IER) = 0;
        MMIO32(PLIC_CLAIM(0)) = id;
    }
    }
}

/* Returns from U-mode code to rt_run_in_mode's caller, from S-mode (see supervisor_hook). */
static void supervisor_return(uint32_t value) {
    register uint32_t a0 __asm__("a0") = value;
    register uint32_t a7 __asm__("a7") = RT_ECALL_RETURN;
    __asm__ volatile("ecall" : : "r"(a0), "r"(a7) : "memory");
}

/* S-mode: the same for the delegated exceptions and interrupts. An ecall from U-mode asking
 * to return (delegated here with the other ecalls from U, as Linux has it) is passed on. */
static void supervisor_hook(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    (void)tval;
    if (!(cause & CAUSE_INTERRUPT)) {
        if (cause == CAUSE_ECALL_U && frame->a7 == RT_ECALL_RETURN) supervisor_return(frame->a0);
        csr_write(sepc, cause == CAUSE_FETCH_PAGE ? frame->ra : epc + 4);
        return;
    }
    switch (cause & 31) {
    case 5: /* STI: M-mode's pending bit stays until M clears it; stop listening */
        csr_clear(sie, MIP_STIP);
        s_timer_taken = 1;
        break;
    case 1: /* SSI */
        csr_clear(sip, MIP_SSIP);
        break;
    default: { /* SEI */
        uint32_t id = MMIO32(PLIC_CLAIM(1));
        MMIO8(UART_IER) = 0;
        MMIO32(PLIC_CLAIM(1)) = id;
    }
    }
}

/* Operand pairs enough for each kind of value V8 distinguishes (small integers, and int32s that
 * are not: its small integers have 31 bits), each branch taken and not, division by zero and
 * the one overflowing division. Not more: V8 compiles a loop that has run a few thousand
 * iterations with nothing new in them, and the warm-up must end before that (warm-up.ts). */
static void integers(void) {
    static const uint32_t pairs[][2] = {
        {7, 3}, {3, 7}, {0x80000000u, 0xffffffffu}, {0xc0000123u, 0}, {0x7fffffffu, 0x12345678u},
    };
    for (uint32_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) warm_integer(pairs[i][0], pairs[i][1]);
}

/* Each width on: a page not in the TLBs (the slow path), the same page again (the fast path),
 * MMIO (the slow path that stops the loop to look at interrupts), misaligned addresses; and
 * stores into a page with decoded instructions, twice (slow, then fast). */
static void memory(uint32_t page, uint32_t code) {
    for (int pass = 0; pass < 2; pass++) {
        warm_loads(page);
        warm_stores(page + 8, 0x80000001u);
        warm_loads(page + 1);
        warm_stores(page + 13, 0x7fff1234u);
        warm_stores(code + 2048, 0);
    }
    warm_loads(PLIC_PRIORITY(0));
    warm_stores(PLIC_PRIORITY(0), 0);
    warm_atomics(page + 64);
}

static void floats(void) {
    /* With the FPU off every F and D instruction is illegal: one, then turn it on. (One trap
     * each: a trap takes some 70 instructions of the runtime's, the same ones every time.) */
    csr_clear(mstatus, MSTATUS_FS);
    warm_float_one();
    csr_set(mstatus, MSTATUS_FS_INITIAL);
    for (int pass = 0; pass < 2; pass++) {
        warm_float_memory((uint32_t)(uintptr_t)&data_page[16]);
        warm_float_memory((uint32_t)(uintptr_t)&data_page[33]); /* misaligned */
    }
    for (uint32_t i = 0; i < sizeof float_operands / sizeof float_operands[0]; i++)
        warm_float_ops(float_operands[i], edge_values[i + 3]);
    /* A reserved dynamic rounding mode is illegal when the instruction runs. */
    csr_write(frm, 5);
    warm_float_one();
    csr_write(frm, 0);
}

#define READ_CSR(name) (void)csr_read(name)

static void machine_csrs(void) {
    READ_CSR(misa); READ_CSR(mvendorid); READ_CSR(marchid); READ_CSR(mimpid); READ_CSR(mhartid);
    READ_CSR(mstatus); READ_CSR(mie); READ_CSR(mip); READ_CSR(mtvec); READ_CSR(mscratch);
    READ_CSR(mepc); READ_CSR(mcause); READ_CSR(mtval); READ_CSR(medeleg); READ_CSR(mideleg);
    READ_CSR(mcounteren); READ_CSR(scounteren); READ_CSR(pmpcfg0); READ_CSR(pmpaddr0);
    READ_CSR(cycle); READ_CSR(cycleh); READ_CSR(time); READ_CSR(timeh); READ_CSR(instret);
    READ_CSR(instreth); READ_CSR(mcycle); READ_CSR(minstret); READ_CSR(mhpmcounter3);
    READ_CSR(sstatus); READ_CSR(sie); READ_CSR(sip); READ_CSR(stvec); READ_CSR(sscratch);
    READ_CSR(sepc); READ_CSR(scause); READ_CSR(stval); READ_CSR(satp);
    csr_write(mcycle, 5);
    csr_write(minstreth, 0);
    csr_write(mscratch, 0);
    csr_swap(sscratch, 0);
    csr_set(mstatus, 0);
    csr_clear(mie, 0);
    __asm__ volatile("csrwi sscratch, 0\n csrsi sepc, 0\n csrci scause, 1" ::: "memory");
    csr_write(mcounteren, 7);
    csr_write(scounteren, 7);
    pmp_allow_all();
}

/* Writes `addi a0, a0, step; ret` into code_page at `offset` and runs it (fence.i first). */
static uint32_t rewrite_and_run(uint32_t base, uint32_t offset, uint32_t step) {
    volatile uint16_t *half = (volatile uint16_t *)(uintptr_t)(base + offset);
    uint32_t addi = 0x00050513u | (step << 20);
    half[0] = (uint16_t)addi;
    half[1] = (uint16_t)(addi >> 16);
    half[2] = 0x8082; /* c.ret */
    __asm__ volatile("fence.i" ::: "memory");
    return ((uint32_t(*)(uint32_t))(uintptr_t)(base + offset))(1);
}

static void self_modifying(uint32_t base) {
    for (uint32_t step = 1; step <= 3; step++) rewrite_and_run(base, 0, step);
    /* 32 bits across a page boundary: decoded for one execution each time. */
    rewrite_and_run(base, PAGE_BYTES - 2, 1);
    rewrite_and_run(base, PAGE_BYTES - 2, 2);
}

/* Waits in WFI until an interrupt enabled in mie is pending (at once if one is), then takes
 * it by enabling MIE for an instruction: with MIE on during WFI, one that is already pending
 * would be taken before the WFI, which would then sleep for good. */
static void wait_for_interrupt(void) {
    __asm__ volatile("wfi\n csrsi mstatus, 8\n csrci mstatus, 8" ::: "memory");
}

static void machine_interrupts(void) {
    set_mtimecmp(read_mtime() + 50);
    csr_write(mie, MIP_MTIP);
    wait_for_interrupt();
    MMIO32(CLINT_MSIP) = 1;
    csr_write(mie, MIP_MSIP);
    wait_for_interrupt();
    MMIO32(PLIC_PRIORITY(UART_IRQ)) = 1;
    MMIO32(PLIC_ENABLE(0)) = 1u << UART_IRQ;
    MMIO32(PLIC_THRESHOLD(0)) = 0;
    MMIO8(UART_IER) = UART_IER_THRI;
    csr_write(mie, MIP_MEIP);
    wait_for_interrupt();
    MMIO32(PLIC_ENABLE(0)) = 0;
    csr_write(mie, 0);
}

static void map_memory(void) {
    for (uint32_t i = 0; i < RAM_MEGAPAGES; i++) {
        uint32_t pa = 0x80000000u + i * SV32_MEGAPAGE_BYTES;
        sv32_map_megapage(pa, pa, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
        sv32_map_megapage(pa + U_OFFSET, pa, PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D);
    }
    static const uint32_t devices[] = {0x00000000u, CLINT_BASE, PLIC_BASE, UART_BASE};
    for (uint32_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
        sv32_map_megapage(devices[i], devices[i], PTE_R | PTE_W | PTE_A | PTE_D);
    uint32_t data = (uint32_t)(uintptr_t)data_page, code = (uint32_t)(uintptr_t)code_page;
    sv32_map_page(VA_DATA, data, PTE_R | PTE_W);
    sv32_map_page(VA_READONLY, data, PTE_R | PTE_A);
    sv32_map_page(VA_NOEXEC, data, PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_page(VA_USER, (uint32_t)(uintptr_t)user_page, PTE_R | PTE_W | PTE_U);
    sv32_map_page(VA_CODE, code, PTE_R | PTE_W | PTE_X);
    sv32_map_page(VA_CODE + PAGE_BYTES, code + PAGE_BYTES, PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
}

/* S-mode, translated: memory through 4 KiB pages, page faults, SUM, CSRs, fences, code written
 * through a mapping, an ecall to M-mode, interrupts of each kind, WFI. */
static uint32_t supervisor_main(uint32_t unused) {
    (void)unused;
    memory(VA_DATA, VA_CODE);
    self_modifying(VA_CODE);
    warm_store_word(VA_READONLY);
    warm_load_word(VA_UNMAPPED);
    ((void (*)(void))(uintptr_t)VA_NOEXEC)();
    csr_set(sstatus, MSTATUS_SUM);
    warm_loads(VA_USER);
    csr_clear(sstatus, MSTATUS_SUM);
    warm_load_word(VA_USER);
    READ_CSR(sstatus); READ_CSR(sie); READ_CSR(sip); READ_CSR(stvec); READ_CSR(scause);
    READ_CSR(sepc); READ_CSR(stval); READ_CSR(time); READ_CSR(cycle); READ_CSR(instret);
    READ_CSR(mstatus); /* illegal in S-mode */
    csr_write(sscratch, 0);
    csr_write(satp, csr_read(satp));
    sfence_vma(VA_DATA);
    sfence_vma_all();
    register uint32_t a7 __asm__("a7") = 0;
    __asm__ volatile("ecall" : "+r"(a7) : : "memory");
    /* Interrupts: SSI at once; the timer through M-mode, waited for in WFI; the UART's SEI. */
    csr_set(sstatus, MSTATUS_SIE);
    csr_write(sie, MIP_SSIP);
    csr_set(sip, MIP_SSIP);
    s_timer_taken = 0;
    csr_write(sie, MIP_STIP);
    set_mtimecmp(read_mtime() + 50);
    while (!s_timer_taken) __asm__ volatile("wfi");
    MMIO8(UART_IER) = UART_IER_THRI;
    csr_write(sie, MIP_SEIP);
    csr_clear(sstatus, MSTATUS_SIE);
    return 0;
}

static void supervisor(void) {
    map_memory();
    csr_write(medeleg, (1u << CAUSE_ILLEGAL) | (1u << CAUSE_BREAKPOINT) | (1u << CAUSE_ECALL_U) |
                           (1u << CAUSE_FETCH_PAGE) | (1u << CAUSE_LOAD_PAGE) | (1u << CAUSE_STORE_PAGE));
    csr_write(mideleg, MIP_SSIP | MIP_STIP | MIP_SEIP);
    csr_write(stvec, (uint32_t)(uintptr_t)rt_strap_entry);
    rt_set_strap_hook(supervisor_hook);
    MMIO32(PLIC_PRIORITY(UART_IRQ)) = 1;
    MMIO32(PLIC_ENABLE(1)) = 1u << UART_IRQ;
    MMIO32(PLIC_THRESHOLD(1)) = 0;
    csr_write(mie, MIP_MTIP);
    csr_write(satp, sv32_satp());
    sfence_vma_all();
    RUN_IN_S(supervisor_main, 0);
    csr_clear(mip, MIP_STIP);
    /* U-mode, through the U alias of the program; its traps go to S-mode on an S stack. */
    csr_write(sscratch, (uint32_t)(uintptr_t)&s_stack[256]);
    rt_run_in_mode(MODE_U, (uint32_t)(uintptr_t)warm_user + U_OFFSET, VA_USER, VA_USER + PAGE_BYTES);
    csr_write(sscratch, 0);
    csr_write(satp, 0);
    csr_write(medeleg, 0);
    csr_write(mideleg, 0);
    csr_write(mie, 0);
    MMIO32(PLIC_ENABLE(1)) = 0;
}

int main(void) {
    rt_set_trap_hook(machine_hook);
    machine_csrs();
    integers();
    memory((uint32_t)(uintptr_t)data_page, (uint32_t)(uintptr_t)code_page);
    self_modifying((uint32_t)(uintptr_t)code_page);
    floats();
    warm_traps((uint32_t)(uintptr_t)data_page + 2);
    machine_interrupts();
    supervisor();
    READ_CSR(hpmcounter3);
    READ_CSR(hpmcounter4h);
    MMIO8(UART_SCRATCH) = 0;
    rt_putchar('\n');
    return 0;
}
