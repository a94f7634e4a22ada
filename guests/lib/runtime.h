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

/* The registers rt_trap_entry saves, in order. */
struct trap_frame {
    uint32_t ra, t0, t1, t2, a0, a1, a2, a3, a4, a5, a6, a7, t3, t4, t5, t6;
};

/* Installed trap hook: return to resume at mepc (which the hook may change). */
typedef void (*trap_hook)(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval);
void rt_set_trap_hook(trap_hook hook);
void rt_trap(struct trap_frame *frame);
extern void rt_trap_entry(void);

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
