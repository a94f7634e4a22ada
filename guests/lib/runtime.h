/* The bare-metal runtime shared by understudy's guest programs (and runnable on QEMU virt). */
#ifndef UNDERSTUDY_RUNTIME_H
#define UNDERSTUDY_RUNTIME_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>

#define UART_BASE      0x10000000u
#define TEST_BASE      0x00100000u
#define RTC_BASE       0x00101000u
#define CLINT_BASE     0x02000000u
#define CLINT_MTIMECMP (CLINT_BASE + 0x4000u)
#define CLINT_MTIME    (CLINT_BASE + 0xbff8u)
#define PLIC_BASE      0x0c000000u
#define VIRTIO_BASE    0x10001000u
#define VIRTIO_STRIDE  0x1000u
#define VIRTIO_SLOTS   8
#define UART_IRQ       10
#define RTC_IRQ        11

/* PLIC registers (context 0: hart 0 M-mode, 1: S-mode), the CLINT's MSIP, the UART's IER. */
#define PLIC_PRIORITY(id)       (PLIC_BASE + 4u * (id))
#define PLIC_ENABLE(context)    (PLIC_BASE + 0x2000u + 0x80u * (context))
#define PLIC_THRESHOLD(context) (PLIC_BASE + 0x200000u + 0x1000u * (context))
#define PLIC_CLAIM(context)     (PLIC_BASE + 0x200004u + 0x1000u * (context))
#define CLINT_MSIP              CLINT_BASE
#define UART_IER                (UART_BASE + 1u)
#define UART_IER_THRI           0x02u

#define MMIO32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define MMIO8(addr)  (*(volatile uint8_t *)(uintptr_t)(addr))

#define csr_read(csr) ({ uint32_t v_; __asm__ volatile("csrr %0, " #csr : "=r"(v_)); v_; })
#define csr_write(csr, val) __asm__ volatile("csrw " #csr ", %0" ::"r"((uint32_t)(val)) : "memory")
#define csr_set(csr, val) __asm__ volatile("csrs " #csr ", %0" ::"r"((uint32_t)(val)) : "memory")
#define csr_clear(csr, val) __asm__ volatile("csrc " #csr ", %0" ::"r"((uint32_t)(val)) : "memory")
#define csr_swap(csr, val) ({ uint32_t v_; __asm__ volatile("csrrw %0, " #csr ", %1" : "=r"(v_) : "r"((uint32_t)(val)) : "memory"); v_; })

#define MSTATUS_SIE  (1u << 1)
#define MSTATUS_MIE  (1u << 3)
#define MSTATUS_SPIE (1u << 5)
#define MSTATUS_MPIE (1u << 7)
#define MSTATUS_SPP  (1u << 8)
#define MSTATUS_MPP  (3u << 11)
#define MSTATUS_MPRV (1u << 17)
#define MSTATUS_SUM  (1u << 18)
#define MSTATUS_MXR  (1u << 19)
#define MSTATUS_TVM  (1u << 20)
#define MSTATUS_TW   (1u << 21)
#define MSTATUS_TSR  (1u << 22)

#define MIP_SSIP (1u << 1)
#define MIP_MSIP (1u << 3)
#define MIP_STIP (1u << 5)
#define MIP_MTIP (1u << 7)
#define MIP_SEIP (1u << 9)
#define MIP_MEIP (1u << 11)

/* The registers rt_trap_entry (and rt_strap_entry) save, in order; sp is the interrupted
 * stack pointer. A hook may change any of them; they are restored on the way out. */
struct trap_frame {
    uint32_t ra, t0, t1, t2, a0, a1, a2, a3, a4, a5, a6, a7, t3, t4, t5, t6;
    uint32_t sp;
};

/* Installed trap hook: return to resume at mepc (which the hook may change). */
typedef void (*trap_hook)(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval);
void rt_set_trap_hook(trap_hook hook);
void rt_trap(struct trap_frame *frame);
extern void rt_trap_entry(void);

/* --- lower privilege modes (lib/modes.S) ------------------------------------------------- */

#define MODE_U 0u
#define MODE_S 1u
#define MODE_M 3u

/* The a7 value of the ecall with which lower-mode code hands control back to
 * rt_run_in_mode's caller (keep equal to the constant in modes.S). rt_trap handles it
 * before any hook, for ecalls from S and U; do not delegate those ecalls while using it. */
#define RT_ECALL_RETURN 0x52540001u

/* Runs entry(arg) in `mode` (MODE_S or MODE_U) from M-mode and returns its a0. Sets
 * mstatus.MPP and mepc and mrets, so the lower mode starts with MIE = the caller's MPIE.
 * The code runs on stack_top (0: an 8 KiB stack of the runtime's), and returns to
 * rt_lower_return, which executes the return ecall; code that cannot reach that address
 * (a page S or U may not execute) ends with the ecall itself. Traps from the lower mode
 * that are not delegated reach rt_trap on the caller's stack (through mscratch). On the
 * way back the caller's callee-saved registers and mstatus.MIE are restored; mstatus.MPP
 * and MPIE are left as the return ecall set them. Not reentrant; M-mode only. */
uint32_t rt_run_in_mode(uint32_t mode, uint32_t entry, uint32_t arg, uint32_t stack_top);
extern void rt_lower_return(void);
void rt_mode_return(uint32_t value) __attribute__((noreturn));
#define RUN_IN_S(fn, arg) rt_run_in_mode(MODE_S, (uint32_t)(uintptr_t)(fn), (uint32_t)(arg), 0)
#define RUN_IN_U(fn, arg) rt_run_in_mode(MODE_U, (uint32_t)(uintptr_t)(fn), (uint32_t)(arg), 0)

/* S-mode trap entry (for stvec): calls the S hook with scause, sepc, stval and srets.
 * Without a hook an S-mode trap prints and exits (code 98). */
extern void rt_strap_entry(void);
void rt_set_strap_hook(trap_hook hook);
void rt_strap(struct trap_frame *frame);

/* Trap notes: hooks that record a trap and resume, for tests that provoke one on purpose.
 * A synchronous trap resumes at the next instruction (epc + 4), except an instruction
 * fetch fault (causes 1, 12), which resumes at frame->ra: make the faulting jump a
 * `jalr ra, ...` (a call). (A misaligned jump target, cause 0, is reported on the jump
 * itself, so it resumes after the jump like other exceptions.) An interrupt is
 * unexpected: it prints and exits (code 97).
 * from_mode is the privilege the trap came from (mstatus.MPP, or sstatus.SPP for S);
 * status is mstatus (sstatus for S) as the handler found it. */
struct trap_note {
    uint32_t count, cause, epc, tval, from_mode, status;
};
extern volatile struct trap_note rt_mnote, rt_snote;
void rt_note_mtraps(void);  /* clears rt_mnote and installs the noting M hook */
void rt_note_straps(void);  /* clears rt_snote, installs the noting S hook, stvec = rt_strap_entry */
void rt_clear_notes(void);  /* clears both notes, keeps the hooks */

void rt_putchar(int c);
void rt_puts(const char *s);
int rt_printf(const char *fmt, ...);
int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t size, const char *fmt, ...);
/* Ends the run through the exit device: 0 = pass, anything else = fail with that code. */
void rt_exit(int code) __attribute__((noreturn));

/* Checks that count failures and print where; rt_check_done() exits with their count. */
extern int rt_failures;
#define CHECK(cond) rt_check((cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ(actual, expected) rt_check_eq((uint32_t)(actual), (uint32_t)(expected), #actual, __FILE__, __LINE__)
void rt_check(int ok, const char *what, const char *file, int line);
void rt_check_eq(uint32_t actual, uint32_t expected, const char *what, const char *file, int line);
int rt_check_done(const char *name);
/* A check with a context: prints "FAIL <what>: <field> = 0x.., expected 0x..". */
void rt_expect(const char *what, const char *field, uint32_t actual, uint32_t expected);

static inline uint32_t rdinstret(void) { uint32_t v; __asm__ volatile("csrr %0, minstret" : "=r"(v)); return v; }
static inline uint64_t read_mtime(void) {
    uint32_t hi, lo;
    do {
        hi = MMIO32(CLINT_MTIME + 4);
        lo = MMIO32(CLINT_MTIME);
    } while (hi != MMIO32(CLINT_MTIME + 4));
    return ((uint64_t)hi << 32) | lo;
}
static inline void set_mtimecmp(uint64_t when) {
    MMIO32(CLINT_MTIMECMP + 4) = 0xffffffffu;
    MMIO32(CLINT_MTIMECMP) = (uint32_t)when;
    MMIO32(CLINT_MTIMECMP + 4) = (uint32_t)(when >> 32);
}

/* Declares a tiny assembly function for tests that must know where an instruction is:
 * `name` (a0 = argument, returns a0) runs `before`, then `insn` at the global label
 * `name_at`, then returns. With the trap notes, a trap at `name_at` resumes 4 bytes after
 * it, so `insn` is assembled without C even in a build with C: a stub that tests a 16-bit
 * instruction says `.option rvc` and pads it to 4 bytes itself (with c.nop). */
#define ASM_STUB(name, before, insn)                                                          \
    __asm__(".text\n.balign 4\n.globl " #name "\n" #name ":\n" before "\n.globl " #name "_at\n" \
            #name "_at:\n.option push\n.option norvc\n" insn "\n.option pop\nret\n");           \
    extern uint32_t name(uint32_t);                                                           \
    extern const uint32_t name##_at[]

/* Causes (mcause/scause); interrupts have bit 31 set. */
#define CAUSE_MISALIGNED_FETCH 0u
#define CAUSE_FETCH_ACCESS     1u
#define CAUSE_ILLEGAL          2u
#define CAUSE_BREAKPOINT       3u
#define CAUSE_MISALIGNED_LOAD  4u
#define CAUSE_LOAD_ACCESS      5u
#define CAUSE_MISALIGNED_STORE 6u
#define CAUSE_STORE_ACCESS     7u
#define CAUSE_ECALL_U          8u
#define CAUSE_ECALL_S          9u
#define CAUSE_ECALL_M          11u
#define CAUSE_FETCH_PAGE       12u
#define CAUSE_LOAD_PAGE        13u
#define CAUSE_STORE_PAGE       15u
#define CAUSE_INTERRUPT        0x80000000u

/* Opens every physical address to S and U mode (QEMU enforces PMP; so do we). */
static inline void pmp_allow_all(void) {
    csr_write(pmpaddr0, 0xffffffffu);
    csr_write(pmpcfg0, 0x1f); /* NAPOT, R W X */
}

void *memset(void *dst, int value, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

#endif
