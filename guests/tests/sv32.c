/* Sv32 address translation (privileged spec, "Sv32: Page-Based 32-bit Virtual-Memory
 * Systems"): 4 KiB pages and 4 MiB megapages, misaligned megapages, the A and D bits,
 * R/W/X permissions and reserved encodings, U pages against S-mode with and without SUM,
 * MXR, MPRV in M-mode, delegated page faults, and sfence.vma after a mapping changes.
 *
 * The program itself (RAM 0x8000_0000..0x80ff_ffff: code, data, stacks, page tables) is
 * identity-mapped with megapages for S-mode, with the UART and the exit device, so S-mode
 * C code runs as it would untranslated. Test mappings live at 0x4000_0000 and up.
 * The spec allows either a page fault or a hardware update when A or D is clear; QEMU
 * updates them (and so does understudy), which is what the test asserts. */
#include "runtime.h"
#include "sv32.h"

#define VA_PAGE       0x40000000u /* page_a, RW */
#define VA_AD         0x40001000u /* page_b, RW with A = D = 0 */
#define VA_XONLY      0x40002000u /* code_page, X only */
#define VA_RONLY      0x40003000u /* page_a, R only */
#define VA_NOEXEC     0x40004000u /* code_page, RW */
#define VA_WONLY      0x40005000u /* page_a, W only: a reserved encoding */
#define VA_UPAGE      0x40006000u /* code_page, U RWX */
#define VA_L0_POINTER 0x40007000u /* a level-0 PTE with V = 1, R = W = X = 0 */
#define VA_INVALID    0x40008000u /* V = 0 */
#define VA_SWAP       0x40009000u /* page_a, later page_b */
#define VA_EXEC       0x4000a000u /* code_page, RX */
#define VA_AD_CODE    0x4000b000u /* code_page, RX with A = 0 */
#define VA_UCODE      0x40010000u /* user_page, U RX */
#define VA_UDATA      0x40011000u /* page_b, U RW */
#define VA_MEGA       0x40400000u /* megapage at MEGA_PA, RW */
#define VA_MISALIGNED 0x40800000u /* level-1 leaf whose PPN[0] is not 0 */
#define MEGA_PA       0x80800000u /* RAM the program does not use */
#define UNMAPPED_VA   0x50000000u

#define PAGE_A_MARK 0xaaaa0001u
#define PAGE_B_MARK 0xbbbb0002u
#define FULL_ACCESS (PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)

static uint32_t page_a[1024] __attribute__((aligned(4096)));
static uint32_t page_b[1024] __attribute__((aligned(4096)));
/* Code reachable through several mappings: `li a0, 7; ret`. */
static uint32_t code_page[1024] __attribute__((aligned(4096)));

/* U-mode code, alone in its page; each entry ends with the return ecall (ra points at
 * rt_lower_return, which U-mode may not execute). */
__asm__(
    ".text\n"
    ".balign 4096\n"
    ".option push\n"
    ".option norvc\n" /* the trap notes resume 4 bytes after a faulting instruction */
    "user_page:\n"
    "user_load:\n"
    "    lw a0, 0(a0)\n"
    "    li a7, 0x52540001\n" /* RT_ECALL_RETURN */
    "    ecall\n"
    "user_store:\n"
    "    sw a0, 0(a0)\n"
    "    li a7, 0x52540001\n"
    "    ecall\n"
    "user_jump:\n"
    "    jalr ra, 0(a0)\n" /* a fetch fault resumes at ra: the next instruction */
    "    li a7, 0x52540001\n"
    "    ecall\n"
    ".option pop\n"
    ".balign 4096\n");
extern const uint32_t user_page[], user_load[], user_store[], user_jump[];

ASM_STUB(load_word, "", "lw a0, 0(a0)");
ASM_STUB(store_word, "", "sw a0, 0(a0)");
/* Calls the code at a0 and returns its a0; a fetch fault resumes at ra, after the call. */
ASM_STUB(jump_to, "addi sp, sp, -16\nsw ra, 12(sp)", "jalr ra, 0(a0)\nlw ra, 12(sp)\naddi sp, sp, 16");

extern char __heap_start[]; /* link.ld: the end of the program's data */

static uint32_t pa(const void *p) { return (uint32_t)(uintptr_t)p; }
static uint32_t user_va(const uint32_t *entry) { return VA_UCODE + (pa(entry) - pa(user_page)); }

static void build_tables(void) {
    sv32_reset();
    for (uint32_t base = 0x80000000u; base < 0x81000000u; base += SV32_MEGAPAGE_BYTES)
        sv32_map_megapage(base, base, FULL_ACCESS);
    sv32_map_megapage(UART_BASE, UART_BASE, PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_megapage(TEST_BASE & ~(SV32_MEGAPAGE_BYTES - 1), TEST_BASE & ~(SV32_MEGAPAGE_BYTES - 1),
                      PTE_R | PTE_W | PTE_A | PTE_D);

    sv32_map_page(VA_PAGE, pa(page_a), PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_page(VA_AD, pa(page_b), PTE_R | PTE_W);
    sv32_map_page(VA_XONLY, pa(code_page), PTE_X | PTE_A);
    sv32_map_page(VA_RONLY, pa(page_a), PTE_R | PTE_A);
    sv32_map_page(VA_NOEXEC, pa(code_page), PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_page(VA_WONLY, pa(page_a), PTE_W | PTE_A | PTE_D);
    sv32_map_page(VA_UPAGE, pa(code_page), PTE_U | FULL_ACCESS);
    *sv32_map_page(VA_L0_POINTER, pa(page_a), 0) = ((pa(page_a) >> 12) << 10) | PTE_V;
    *sv32_map_page(VA_INVALID, pa(page_a), 0) = 0;
    sv32_map_page(VA_SWAP, pa(page_a), PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_page(VA_EXEC, pa(code_page), PTE_R | PTE_X | PTE_A);
    sv32_map_page(VA_AD_CODE, pa(code_page), PTE_R | PTE_X);
    sv32_map_page(VA_UCODE, pa(user_page), PTE_U | PTE_R | PTE_X | PTE_A);
    sv32_map_page(VA_UDATA, pa(page_b), PTE_U | PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_megapage(VA_MEGA, MEGA_PA, PTE_R | PTE_W | PTE_A | PTE_D);
    sv32_map_megapage(VA_MISALIGNED, MEGA_PA + SV32_PAGE_BYTES, FULL_ACCESS);
}

static uint32_t in_s(uint32_t (*fn)(uint32_t), uint32_t arg) {
    return rt_run_in_mode(MODE_S, (uint32_t)(uintptr_t)fn, arg, 0);
}

static uint32_t in_u(const uint32_t *entry, uint32_t arg) {
    return rt_run_in_mode(MODE_U, user_va(entry), arg, 0);
}

static void expect_clean(const char *what) { rt_expect(what, "traps", rt_mnote.count + rt_snote.count, 0); }

/* One page fault into M-mode from `mode` with stval = va and mepc = epc. */
static void expect_fault(const char *what, uint32_t cause, uint32_t va, uint32_t epc, uint32_t mode) {
    rt_expect(what, "traps", rt_mnote.count, 1);
    rt_expect(what, "mcause", rt_mnote.cause, cause);
    rt_expect(what, "mtval", rt_mnote.tval, va);
    rt_expect(what, "mepc", rt_mnote.epc, epc);
    rt_expect(what, "previous mode", rt_mnote.from_mode, mode);
    rt_clear_notes();
}

static void s_load_fault(const char *what, uint32_t va) {
    rt_clear_notes();
    in_s(load_word, va);
    expect_fault(what, CAUSE_LOAD_PAGE, va, pa(load_word_at), MODE_S);
}

static void s_store_fault(const char *what, uint32_t va) {
    rt_clear_notes();
    in_s(store_word, va);
    expect_fault(what, CAUSE_STORE_PAGE, va, pa(store_word_at), MODE_S);
}

static void s_fetch_fault(const char *what, uint32_t va) {
    rt_clear_notes();
    in_s(jump_to, va);
    expect_fault(what, CAUSE_FETCH_PAGE, va, va, MODE_S);
}

static void test_pages(void) {
    rt_clear_notes();
    page_a[0] = PAGE_A_MARK;
    page_a[1023] = PAGE_A_MARK + 1023;
    CHECK_EQ(in_s(load_word, VA_PAGE), PAGE_A_MARK);
    CHECK_EQ(in_s(load_word, VA_PAGE + 4092), PAGE_A_MARK + 1023);
    in_s(store_word, VA_PAGE + 8); /* stores its own address */
    CHECK_EQ(page_a[2], VA_PAGE + 8);
    CHECK_EQ(in_s(load_word, VA_RONLY), PAGE_A_MARK); /* another VA, the same page */
    expect_clean("4 KiB pages");

    /* Code fetched through a 4 KiB page at another address. */
    CHECK_EQ(in_s(jump_to, VA_EXEC), 7);
    expect_clean("fetch through a 4 KiB page");

    /* A megapage: the low 22 bits of the address are the offset. */
    MMIO32(MEGA_PA + 0x1234) = 0x1234abcd;
    MMIO32(MEGA_PA + 0x3ffffc) = 0x3ffffc00;
    CHECK_EQ(in_s(load_word, VA_MEGA + 0x1234), 0x1234abcd);
    CHECK_EQ(in_s(load_word, VA_MEGA + 0x3ffffc), 0x3ffffc00);
    in_s(store_word, VA_MEGA + 0x200000);
    CHECK_EQ(MMIO32(MEGA_PA + 0x200000), VA_MEGA + 0x200000);
    expect_clean("megapage");

    /* A level-1 leaf with PPN[0] != 0 is a misaligned megapage: page fault. */
    s_load_fault("misaligned megapage, load", VA_MISALIGNED + 0x10);
    s_store_fault("misaligned megapage, store", VA_MISALIGNED + 0x20);
    s_fetch_fault("misaligned megapage, fetch", VA_MISALIGNED + 0x30);

    /* Invalid entries, a pointer at the last level, nothing mapped at all. */
    s_load_fault("V = 0", VA_INVALID + 4);
    s_load_fault("level-0 pointer", VA_L0_POINTER);
    s_store_fault("unmapped region", UNMAPPED_VA + 0x44);
    s_fetch_fault("unmapped region, fetch", UNMAPPED_VA);
}

static void test_accessed_dirty(void) {
    volatile uint32_t *pte = sv32_leaf(VA_AD);
    page_b[5] = PAGE_B_MARK;
    CHECK_EQ(*pte & (PTE_A | PTE_D), 0);
    CHECK_EQ(in_s(load_word, VA_AD + 20), PAGE_B_MARK);
    CHECK_EQ(*pte & (PTE_A | PTE_D), PTE_A);
    in_s(store_word, VA_AD + 24);
    CHECK_EQ(*pte & (PTE_A | PTE_D), PTE_A | PTE_D);
    CHECK_EQ(page_b[6], VA_AD + 24);
    /* A fetch sets A, not D. */
    volatile uint32_t *code_pte = sv32_leaf(VA_AD_CODE);
    CHECK_EQ(*code_pte & (PTE_A | PTE_D), 0);
    CHECK_EQ(in_s(jump_to, VA_AD_CODE), 7);
    CHECK_EQ(*code_pte & (PTE_A | PTE_D), PTE_A);
    /* The other PTE bits are untouched. */
    CHECK_EQ(sv32_pte_address(*pte), pa(page_b));
    CHECK_EQ(sv32_pte_flags(*pte), PTE_V | PTE_R | PTE_W | PTE_A | PTE_D);
    expect_clean("A/D updates");
}

static void test_permissions(void) {
    s_load_fault("load from X-only", VA_XONLY);
    s_store_fault("store to X-only", VA_XONLY + 4);
    s_store_fault("store to R-only", VA_RONLY + 8);
    s_fetch_fault("fetch from RW", VA_NOEXEC);
    s_load_fault("load from W-only (reserved)", VA_WONLY);
    s_store_fault("store to W-only (reserved)", VA_WONLY);
    CHECK_EQ(page_a[0], PAGE_A_MARK); /* nothing stored */

    /* MXR: loads may read execute-only pages. */
    csr_set(mstatus, MSTATUS_MXR);
    CHECK_EQ(in_s(load_word, VA_XONLY), code_page[0]);
    expect_clean("load from X-only with MXR");
    s_store_fault("store to X-only with MXR", VA_XONLY + 4);
    csr_clear(mstatus, MSTATUS_MXR);
}

static void test_user_pages(void) {
    /* S-mode and U pages: no loads or stores without SUM, never any fetch. */
    s_load_fault("S load from U page", VA_UPAGE);
    s_store_fault("S store to U page", VA_UPAGE + 0x800);
    csr_set(mstatus, MSTATUS_SUM);
    CHECK_EQ(in_s(load_word, VA_UPAGE), code_page[0]);
    in_s(store_word, VA_UPAGE + 0x800);
    CHECK_EQ(code_page[0x200], VA_UPAGE + 0x800);
    expect_clean("S access to U page with SUM");
    s_fetch_fault("S fetch from U page with SUM", VA_UPAGE);
    csr_clear(mstatus, MSTATUS_SUM);

    /* U-mode: its own pages work; S pages fault for loads, stores and fetches. */
    page_b[3] = PAGE_B_MARK;
    rt_clear_notes();
    CHECK_EQ(in_u(user_load, VA_UDATA + 12), PAGE_B_MARK);
    in_u(user_store, VA_UDATA + 16);
    CHECK_EQ(page_b[4], VA_UDATA + 16);
    CHECK_EQ(in_u(user_jump, VA_UPAGE), 7);
    expect_clean("U access to U pages");
    in_u(user_load, VA_PAGE);
    expect_fault("U load from S page", CAUSE_LOAD_PAGE, VA_PAGE, user_va(user_load), MODE_U);
    in_u(user_store, VA_PAGE + 4);
    expect_fault("U store to S page", CAUSE_STORE_PAGE, VA_PAGE + 4, user_va(user_store), MODE_U);
    in_u(user_jump, VA_EXEC);
    expect_fault("U fetch from S page", CAUSE_FETCH_PAGE, VA_EXEC, VA_EXEC, MODE_U);
    /* SUM does not matter to U-mode. */
    csr_set(mstatus, MSTATUS_SUM);
    in_u(user_load, VA_PAGE);
    expect_fault("U load from S page with SUM", CAUSE_LOAD_PAGE, VA_PAGE, user_va(user_load), MODE_U);
    csr_clear(mstatus, MSTATUS_SUM);
}

/* Page faults delegated to S-mode: scause, sepc and stval, and nothing in M. */
static void test_delegated_faults(void) {
    csr_write(medeleg, (1u << CAUSE_LOAD_PAGE) | (1u << CAUSE_STORE_PAGE) | (1u << CAUSE_FETCH_PAGE));
    rt_clear_notes();
    in_u(user_load, VA_PAGE + 0x40);
    rt_expect("delegated U load fault", "M traps", rt_mnote.count, 0);
    rt_expect("delegated U load fault", "S traps", rt_snote.count, 1);
    rt_expect("delegated U load fault", "scause", rt_snote.cause, CAUSE_LOAD_PAGE);
    rt_expect("delegated U load fault", "stval", rt_snote.tval, VA_PAGE + 0x40);
    rt_expect("delegated U load fault", "sepc", rt_snote.epc, user_va(user_load));
    rt_expect("delegated U load fault", "from mode", rt_snote.from_mode, MODE_U);
    rt_clear_notes();
    in_s(jump_to, VA_NOEXEC + 8);
    rt_expect("delegated S fetch fault", "S traps", rt_snote.count, 1);
    rt_expect("delegated S fetch fault", "scause", rt_snote.cause, CAUSE_FETCH_PAGE);
    rt_expect("delegated S fetch fault", "stval", rt_snote.tval, VA_NOEXEC + 8);
    rt_expect("delegated S fetch fault", "sepc", rt_snote.epc, VA_NOEXEC + 8);
    rt_expect("delegated S fetch fault", "from mode", rt_snote.from_mode, MODE_S);
    rt_clear_notes();
    in_s(store_word, VA_RONLY);
    rt_expect("delegated S store fault", "scause", rt_snote.cause, CAUSE_STORE_PAGE);
    rt_expect("delegated S store fault", "stval", rt_snote.tval, VA_RONLY);
    rt_expect("delegated S store fault", "M traps", rt_mnote.count, 0);
    csr_write(medeleg, 0);
    rt_clear_notes();
}

/* M-mode loads and stores with MPRV = 1 use MPP's privilege and translation; fetches
 * do not. MPRV is cleared before anything else touches memory. */
static uint32_t mprv_load(uint32_t va, uint32_t mpp, uint32_t value_if_fault) {
    uint32_t value = value_if_fault;
    __asm__ volatile(
        "csrc mstatus, %[mpp_mask]\n"
        "csrs mstatus, %[mpp]\n"
        "csrs mstatus, %[mprv]\n"
        ".option push\n.option norvc\n" /* a fault resumes 4 bytes on */
        "lw %[value], 0(%[va])\n"
        ".option pop\n"
        "csrc mstatus, %[mprv]\n"
        : [value] "+r"(value)
        : [va] "r"(va), [mpp] "r"(mpp << 11), [mpp_mask] "r"(MSTATUS_MPP), [mprv] "r"(MSTATUS_MPRV)
        : "memory");
    return value;
}

static void mprv_store(uint32_t va, uint32_t mpp, uint32_t value) {
    __asm__ volatile(
        "csrc mstatus, %[mpp_mask]\n"
        "csrs mstatus, %[mpp]\n"
        "csrs mstatus, %[mprv]\n"
        ".option push\n.option norvc\n" /* a fault resumes 4 bytes on */
        "sw %[value], 0(%[va])\n"
        ".option pop\n"
        "csrc mstatus, %[mprv]\n"
        :
        : [value] "r"(value), [va] "r"(va), [mpp] "r"(mpp << 11), [mpp_mask] "r"(MSTATUS_MPP),
          [mprv] "r"(MSTATUS_MPRV)
        : "memory");
}

static void test_mprv(void) {
    rt_clear_notes();
    page_a[16] = 0x16161616;
    CHECK_EQ(mprv_load(VA_PAGE + 64, MODE_S, 0), 0x16161616);
    mprv_store(VA_PAGE + 68, MODE_S, 0x17171717);
    CHECK_EQ(page_a[17], 0x17171717);
    CHECK_EQ(mprv_load(VA_UDATA + 16, MODE_U, 0), VA_UDATA + 16);
    expect_clean("MPRV accesses");
    /* The access is checked as MPP's: U may not touch an S page; and unmapped is unmapped. */
    CHECK_EQ(mprv_load(VA_PAGE, MODE_U, 0x5a5a), 0x5a5a);
    CHECK_EQ(rt_mnote.count, 1);
    CHECK_EQ(rt_mnote.cause, CAUSE_LOAD_PAGE);
    CHECK_EQ(rt_mnote.tval, VA_PAGE);
    rt_clear_notes();
    mprv_store(UNMAPPED_VA + 8, MODE_S, 1);
    CHECK_EQ(rt_mnote.count, 1);
    CHECK_EQ(rt_mnote.cause, CAUSE_STORE_PAGE);
    CHECK_EQ(rt_mnote.tval, UNMAPPED_VA + 8);
    rt_clear_notes();
    /* MPP = M: no translation (this address is the RAM behind page_a itself). */
    CHECK_EQ(mprv_load(pa(&page_a[16]), MODE_M, 0), 0x16161616);
    expect_clean("MPRV with MPP = M");
    CHECK_EQ(csr_read(mstatus) & MSTATUS_MPRV, 0);
}

/* S-mode changes a mapping in its own page table and flushes it with sfence.vma. */
static volatile uint32_t swap_before, swap_after, unmap_fault_va;

static uint32_t s_remap(uint32_t unused) {
    (void)unused;
    volatile uint32_t *va = (volatile uint32_t *)VA_SWAP;
    swap_before = *va;
    sv32_map_page(VA_SWAP, pa(page_b), PTE_R | PTE_W | PTE_A | PTE_D);
    sfence_vma(VA_SWAP);
    swap_after = *va;
    /* And back, flushing everything this time. */
    sv32_map_page(VA_SWAP, pa(page_a), PTE_R | PTE_W | PTE_A | PTE_D);
    sfence_vma_all();
    return *va;
}

static void test_sfence(void) {
    page_a[0] = PAGE_A_MARK;
    page_b[0] = PAGE_B_MARK;
    rt_clear_notes();
    CHECK_EQ(in_s(s_remap, 0), PAGE_A_MARK);
    CHECK_EQ(swap_before, PAGE_A_MARK);
    CHECK_EQ(swap_after, PAGE_B_MARK);
    expect_clean("remap with sfence.vma");
    /* Unmapping: after the flush, the access faults. */
    CHECK_EQ(in_s(load_word, VA_SWAP), PAGE_A_MARK);
    *sv32_leaf(VA_SWAP) = 0;
    sfence_vma(VA_SWAP);
    s_load_fault("after unmap and sfence.vma", VA_SWAP);
    sv32_map_page(VA_SWAP, pa(page_a), PTE_R | PTE_W | PTE_A | PTE_D);
    sfence_vma_all();
}

int main(void) {
    pmp_allow_all();
    rt_note_mtraps();
    rt_note_straps();
    code_page[0] = 0x00700513u; /* addi a0, zero, 7 */
    code_page[1] = 0x00008067u; /* jalr zero, 0(ra) */
    __asm__ volatile("fence.i" ::: "memory");
    CHECK(pa(__heap_start) <= MEGA_PA); /* the megapage test's RAM is free */
    build_tables();
    csr_write(satp, sv32_satp());
    CHECK_EQ(csr_read(satp), sv32_satp());
    sfence_vma_all();
    test_pages();
    test_accessed_dirty();
    test_permissions();
    test_user_pages();
    test_delegated_faults();
    test_mprv();
    test_sfence();
    csr_write(satp, 0);
    sfence_vma_all();
    return rt_check_done("sv32");
}
